"""Credentials to Principal: HS256 JWTs with `sub` (the user id) and `roles`.

Only HS256 is accepted, so `alg: none` and algorithm-confusion tokens fail; `exp` is
checked when present.
"""

from datetime import UTC, datetime, timedelta

import jwt

from services.access import Principal, Role
from services.errors import Unauthenticated

ALGORITHM = "HS256"


def principal_from_header(header: object, secret: str) -> Principal | None:
    """The principal of an `Authorization: Bearer <JWT>` value; None when there is none."""
    if header is None or header == "":
        return None
    if not isinstance(header, str) or not header.startswith("Bearer "):
        raise Unauthenticated("Authorization must be 'Bearer <JWT>'")
    return decode_token(header.removeprefix("Bearer ").strip(), secret)


def decode_token(token: str, secret: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub"]})
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"the token was refused: {exc}") from None
    subject = claims["sub"]
    raw_roles = claims.get("roles", [Role.USER.value])
    if not isinstance(subject, str) or not subject or not isinstance(raw_roles, list):
        raise Unauthenticated("the token needs a string `sub` and a list of `roles`")
    try:
        roles = frozenset(Role(r) for r in raw_roles)
    except ValueError:
        raise Unauthenticated(f"unknown role in {raw_roles}; use user, service or admin") from None
    return Principal(user_id=subject, roles=roles)


def issue_token(
    *, secret: str, user_id: str, roles: list[Role], ttl: timedelta = timedelta(hours=12)
) -> str:
    """A signed token for local use and tests (`usercredits token`)."""
    now = datetime.now(UTC)
    claims = {"sub": user_id, "roles": [r.value for r in roles], "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
