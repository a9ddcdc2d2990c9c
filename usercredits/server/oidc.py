"""Tokens of an OpenID Connect provider (Auth0, Clerk, Cognito, Keycloak...) to Principal.

A token must be signed with RS256, ES256 or EdDSA by a key of the provider's JWKS, with
the configured issuer and audience, and unexpired (`exp`, `nbf` and `iat` with a small
leeway). The algorithm is taken from the token only among those three and must be the
key's own, so `alg: none` and HS256 signed with a public key are refused; its date claims
are read as server/claims.py says, and checked against the server's clock by
`check_dates` (for HS256 tokens too) rather than by PyJWT, which reads the wall clock.
The user id is read from a configured claim (default `sub`), the roles from another: a
name with a colon (a URI such as Auth0's `https://example.com/roles`) names one top-level
claim, and in any other name the dots lead through nested objects (`realm_access.roles`
is the `roles` of `realm_access`, never a top-level claim of that name). That claim must
be a list of strings; of those, the exact names user, service and admin become roles
(`Admin` is not `admin`), others (a provider's own, such as `offline_access`) are
ignored; no claim, or no role, means user.

A failed fetch of the keys is logged with its cause and answered only with "the identity
provider's keys could not be fetched": its hosts are no business of an anonymous caller.

The JWKS is fetched once and kept: tokens whose key is known are checked without the
provider, so a provider that is down stops nothing already seen. A token with an unknown
`kid` (the provider rotated its keys) makes the keys be fetched again, at most once per
`refetch_seconds`, so a flood of made-up kids cannot hammer the provider.
"""

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import jwt
from jwt.types import Options

from usercredits.server.claims import expiry, token_refused
from usercredits.services.clock import Clock
from usercredits.services.errors import Unauthenticated
from usercredits.services.identity.access import Principal, Role

ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 30
FETCH_TIMEOUT_SECONDS = 5.0
ROLE_NAMES = {role.value: role for role in Role}

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OidcRules:
    issuer: str
    audience: str
    jwks_url: str | None = None
    """Unset: discovered from the issuer's /.well-known/openid-configuration."""
    user_claim: str = "sub"
    roles_claim: str | None = None
    """Unset: every token's holder is a user."""
    refetch_seconds: float = 60.0
    """The keys are fetched again (for an unknown `kid`) at most this often."""


class ProviderKeys:
    """The provider's signing keys by `kid`, fetched over HTTP and cached (see the module
    doc for when they are fetched again)."""

    def __init__(self, rules: OidcRules) -> None:
        self.rules = rules
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._jwks_url = rules.jwks_url
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def key(self, kid: str | None) -> jwt.PyJWK:
        if kid not in self._keys:
            async with self._lock:
                due = self._fetched_at is None or (
                    time.monotonic() - self._fetched_at >= self.rules.refetch_seconds
                )
                if kid not in self._keys and due:
                    await self._fetch()
        found = self._keys.get(kid)
        if found is None:
            raise Unauthenticated(f"the token's key {kid!r} is not one of the provider's keys")
        return found

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            if self._jwks_url is None:
                issuer = self.rules.issuer.rstrip("/")
                found = await self._get_json(f"{issuer}/.well-known/openid-configuration")
                self._jwks_url = str(found["jwks_uri"])
            keys: dict[str | None, jwt.PyJWK] = {}
            for data in (await self._get_json(self._jwks_url))["keys"]:
                try:
                    key = jwt.PyJWK.from_dict(data)
                except jwt.PyJWTError:  # a kind of key we do not use (say, for encryption)
                    continue
                if key.algorithm_name in ALGORITHMS and data.get("use", "sig") == "sig":
                    keys[key.key_id] = key
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "the identity provider's keys could not be fetched",
                extra={"issuer": self.rules.issuer, "jwks_url": self._jwks_url, "error": repr(exc)},
            )
            raise Unauthenticated("the identity provider's keys could not be fetched") from None
        self._keys = keys

    async def _get_json(self, url: str) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
            )
        async with self._session.get(url) as response:
            response.raise_for_status()
            return await response.json(content_type=None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def undated(*, require: list[str], verify_aud: bool = True) -> Options:
    """PyJWT's options: the claims in `require` must be there, and all but the date claims
    are checked, which PyJWT would check against the wall clock (see `check_dates`)."""
    return {
        "require": require,
        "verify_aud": verify_aud,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
    }


def check_dates(claims: Mapping[str, Any], *, now: datetime, leeway: float = 0) -> datetime | None:
    """When a token whose signature holds lapses (None without `exp`), its date claims
    checked against `now` as PyJWT checks them against the wall clock, with its messages:
    refused when `iat` or `nbf` is more than `leeway` seconds ahead, and as TokenExpired once
    `exp` is `leeway` seconds past. First each claim must be a number as claims.expiry says,
    and `nbf` and `iat` finite ones (PyJWT refuses NaN and infinity too)."""
    expires = expiry(claims)
    for claim in ("iat", "nbf"):
        if claim in claims and not math.isfinite(claims[claim]):
            raise Unauthenticated(f"the token's `{claim}` must be a number of seconds")
    moment = now.timestamp()
    if "iat" in claims and claims["iat"] > moment + leeway:
        raise token_refused(jwt.ImmatureSignatureError("The token is not yet valid (iat)"))
    if "nbf" in claims and claims["nbf"] > moment + leeway:
        raise token_refused(jwt.ImmatureSignatureError("The token is not yet valid (nbf)"))
    if "exp" in claims and claims["exp"] <= moment - leeway:
        raise token_refused(jwt.ExpiredSignatureError("Signature has expired"))
    return expires


async def decode_oidc(token: str, keys: ProviderKeys, *, clock: Clock) -> Principal:
    rules = keys.rules
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise token_refused(exc) from None
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise Unauthenticated(
            f"the token was refused: algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}"
        )
    key = await keys.key(header.get("kid"))
    if key.algorithm_name != algorithm:
        raise Unauthenticated(f"the token was refused: its key is for {key.algorithm_name}")
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            audience=rules.audience,
            issuer=rules.issuer,
            options=undated(require=["exp", "iat", "iss", "aud"]),
        )
    except jwt.PyJWTError as exc:
        raise token_refused(exc) from None
    expires = check_dates(claims, now=clock.now(), leeway=LEEWAY_SECONDS)
    user = claims.get(rules.user_claim)
    if not isinstance(user, str) or not user:
        raise Unauthenticated(f"the token needs a string `{rules.user_claim}`")
    return Principal(
        user_id=user,
        roles=_roles(claims, rules.roles_claim),
        expires_at=expires,
        clock=clock,
    )


def _roles(claims: Mapping[str, Any], claim: str | None) -> frozenset[Role]:
    """The roles the configured claim lists (see the module doc); user when it lists none."""
    names = None if claim is None else _claim(claims, claim)
    if names is None:
        return frozenset({Role.USER})
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Unauthenticated(f"the token's `{claim}` must be a list of role names")
    roles = frozenset(ROLE_NAMES[n] for n in names if n in ROLE_NAMES)
    return roles or frozenset({Role.USER})


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim `name` names: a URI whole, any other name's dots through nested objects."""
    if ":" in name:
        return claims.get(name)
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
