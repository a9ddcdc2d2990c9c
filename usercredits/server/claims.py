"""The date claims of a JWT, read the same way for HS256 tokens (server/auth.py) and a
provider's (server/oidc.py), after PyJWT has checked them against the clock.

Each of `exp`, `nbf` and `iat` a token carries must be a number of seconds (PyJWT alone
takes the string "9999999999"), and `exp` one a date can hold (the year 9999 at most), so
a validly signed token with a string or huge date is refused as UNAUTHENTICATED with a
message saying why, never answered with a server error. A token refused only because its
`exp` has passed is TokenExpired, so that a websocket can be told to come back with a
fresh one (server/socket_closes.py).
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jwt

from usercredits.services.errors import Unauthenticated

DATE_CLAIMS = ("exp", "nbf", "iat")
LATEST_EXP = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


class TokenExpired(Unauthenticated):
    """A token whose signature holds but whose `exp` has passed: the same credentials, made
    afresh, would sign in."""


def token_refused(error: jwt.PyJWTError) -> Unauthenticated:
    """The refusal of a token PyJWT did not take (it checks the signature before the dates,
    so an expired token was signed by whom it claims)."""
    message = f"the token was refused: {error}"
    if isinstance(error, jwt.ExpiredSignatureError):
        return TokenExpired(message)
    return Unauthenticated(message)


def expiry(claims: Mapping[str, Any]) -> datetime | None:
    """When the token lapses (None without `exp`); Unauthenticated for a date claim that
    is not a number of seconds, or an `exp` past LATEST_EXP."""
    for claim in DATE_CLAIMS:
        value = claims.get(claim)
        if claim in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Unauthenticated(f"the token's `{claim}` must be a number of seconds")
    if "exp" not in claims:
        return None
    if not claims["exp"] <= LATEST_EXP:  # NaN too
        raise Unauthenticated(
            f"the token's `exp` must be at most {LATEST_EXP} (the end of the year 9999)"
        )
    return datetime.fromtimestamp(claims["exp"], UTC)
