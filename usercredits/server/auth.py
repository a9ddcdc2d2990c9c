"""Credentials to Principal, the same way over HTTP and websockets (`Authenticator`): API
keys of back ends (services/identity/api_keys.py), tokens of an OpenID Connect provider
(server/oidc.py), and HS256 JWTs signed with the shared secret, with `sub` (the user id)
and `roles`, for local use and tests.

HS256 tokens are checked with the secret only, so `alg: none` and algorithm-confusion
tokens fail; with the secret unset and a provider configured they are refused. `exp` is
required unless the settings allow tokens without it, and every date claim must be a
number that a date can hold (server/claims.py); `aud` and `iss` are checked when the
settings name them. `roles` is a list of the exact names user, service and admin. Dates
are checked against the server's clock (oidc.check_dates), not PyJWT's wall clock, so a
test moving its clock moves token expiry too. The principal carries the token's expiry and
that clock, so that a websocket authenticated once stops acting for it when the token
lapses. Refusals say which kind they are (MalformedAuthorization, claims.TokenExpired), so
that a websocket is closed with a code its client can act on.
"""

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from usercredits.server.claims import token_refused
from usercredits.server.oidc import OidcRules, ProviderKeys, check_dates, decode_oidc, undated
from usercredits.services.clock import Clock
from usercredits.services.errors import Unauthenticated
from usercredits.services.identity.access import Principal, Role
from usercredits.services.identity.api_keys import ApiKeys, is_api_key

ALGORITHM = "HS256"
KNOWN_TOKENS = 10_000
"""Tokens whose principal is kept (a bounded LRU): a client sends the same token with
every request, and checking its signature again each time cost a tenth of a debit's CPU
time over HTTP (measured)."""


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What a token must satisfy; the server builds this from its settings."""

    secret: str
    require_exp: bool = True
    audience: str | None = None
    issuer: str | None = None


class MalformedAuthorization(Unauthenticated):
    """An `Authorization` value that is not `Bearer <token or API key>` at all: the client
    sends the wrong thing, rather than credentials that were refused."""


def _credential(header: str) -> str:
    return header.removeprefix("Bearer ").strip()


def signs_in_with_api_key(header: object) -> bool:
    """Whether an `Authorization` value carries an API key (rather than a token)."""
    return isinstance(header, str) and is_api_key(_credential(header))


class Authenticator:
    """Turns an `Authorization` value (`Bearer <token or API key>`) into a Principal."""

    def __init__(
        self,
        *,
        rules: TokenRules | None,
        oidc: OidcRules | None,
        api_keys: ApiKeys,
        clock: Clock,
    ) -> None:
        self._rules = rules
        self._clock = clock
        self._provider_keys = None if oidc is None else ProviderKeys(oidc)
        self._api_keys = api_keys
        self._known: OrderedDict[str, Principal] = OrderedDict()

    async def principal(self, header: object) -> Principal | None:
        """The caller; None when no credentials were sent; Unauthenticated for bad ones."""
        if header is None or header == "":
            return None
        if not isinstance(header, str) or not header.startswith("Bearer "):
            raise MalformedAuthorization("Authorization must be 'Bearer <token or API key>'")
        credential = _credential(header)
        if is_api_key(credential):  # not kept here: a revocation must be seen within a second
            key = await self._api_keys.authenticate(credential)
            if key is None:
                raise Unauthenticated("the API key is unknown or revoked")
            return Principal(user_id=f"apikey:{key.id}", roles=frozenset({key.role}))
        known = self._known.get(credential)
        if known is not None and not known.lapsed:
            self._known.move_to_end(credential)
            return known
        principal = await self._token(credential)
        self._known[credential] = principal
        if len(self._known) > KNOWN_TOKENS:
            self._known.popitem(last=False)
        return principal

    async def _token(self, credential: str) -> Principal:
        """The principal of a JWT: the provider's, or HS256 with the shared secret."""
        if self._provider_keys is not None:
            try:
                algorithm = jwt.get_unverified_header(credential).get("alg")
            except jwt.PyJWTError as exc:
                raise token_refused(exc) from None
            if algorithm != ALGORITHM:
                return await decode_oidc(credential, self._provider_keys, clock=self._clock)
        if self._rules is None:
            raise Unauthenticated(
                "HS256 tokens are switched off here: send your identity provider's token"
            )
        return decode_token(credential, self._rules, clock=self._clock)

    async def close(self) -> None:
        if self._provider_keys is not None:
            await self._provider_keys.close()


def decode_token(token: str, rules: TokenRules, *, clock: Clock) -> Principal:
    required = ["sub", "exp"] if rules.require_exp else ["sub"]
    if rules.audience is not None:
        required.append("aud")
    if rules.issuer is not None:
        required.append("iss")
    try:
        claims = jwt.decode(
            token,
            rules.secret,
            algorithms=[ALGORITHM],
            audience=rules.audience,
            issuer=rules.issuer,
            options=undated(require=required, verify_aud=rules.audience is not None),
        )
    except jwt.PyJWTError as exc:
        raise token_refused(exc) from None
    expires = check_dates(claims, now=clock.now())
    subject = claims["sub"]
    raw_roles = claims.get("roles", [Role.USER.value])
    if not isinstance(subject, str) or not subject or not isinstance(raw_roles, list):
        raise Unauthenticated("the token needs a string `sub` and a list of `roles`")
    try:
        roles = frozenset(Role(r) for r in raw_roles)
    except ValueError:
        raise Unauthenticated("unknown role in `roles`; use user, service or admin") from None
    return Principal(user_id=subject, roles=roles, expires_at=expires, clock=clock)


def issue_token(
    *,
    rules: TokenRules,
    user_id: str,
    roles: list[Role],
    ttl: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> str:
    """A signed token that `rules` accept, for local use and tests (`usercredits token`),
    issued at `now`: a server on another clock than the wall's (a test's) is given tokens
    of its own time."""
    now = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": user_id,
        "roles": [r.value for r in roles],
        "iat": now,
        "exp": now + ttl,
    }
    if rules.audience is not None:
        claims["aud"] = rules.audience
    if rules.issuer is not None:
        claims["iss"] = rules.issuer
    return jwt.encode(claims, rules.secret, algorithm=ALGORITHM)
