"""Why the service closes a websocket, as close codes a client can act on.

Strawberry closes every connection_init that `on_ws_connect` refuses with 4403 "Forbidden",
so a client could not tell a token to refresh from credentials that will never do, nor
from a payload it got wrong. The service closes with:

- 4400 (graphql-transport-ws's Bad request): the connection_init payload is malformed (not
  an object, or an `authorization` that is not `Bearer <token or API key>`), or another
  message breaks the protocol. Fix the client; retrying the same sends the same.
- 4401: the token expired, at connection_init or while the socket was open. Reconnect with
  a fresh token. (graphql-transport-ws also closes a subscribe sent before connection_ack
  with 4401 "Unauthorized"; a client that follows the protocol never receives that one.)
- 4403: the caller may not open a socket: no credentials, a token refused for anything but
  its expiry (forged, wrong audience, unknown role), an unknown or revoked API key.
  Retrying with the same credentials is refused again.
- 4429: the caller holds as many sockets as it may (server/concurrency.py).

The reason says the same in words, cut to what a close frame carries (app.SocketAdapter
cuts every reason, Strawberry's too).
"""

from usercredits.server.auth import MalformedAuthorization
from usercredits.server.claims import TokenExpired
from usercredits.services.errors import Unauthenticated

MALFORMED = 4400
TOKEN_EXPIRED = 4401
FORBIDDEN = 4403
TOKEN_EXPIRED_REASON = "token expired: reconnect with a fresh token"
REASON_BYTES = 123
"""The most a close frame's reason may hold (RFC 6455: 125 bytes of payload, 2 of them the
code)."""


class SocketRefused(Exception):
    """A websocket the service closes at connection_init, with its code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def refusal(error: Unauthenticated) -> SocketRefused:
    """The close of a socket whose credentials were refused: the code tells the client
    whether a fresh token, other credentials or a fixed payload would do."""
    if isinstance(error, TokenExpired):
        return SocketRefused(TOKEN_EXPIRED, TOKEN_EXPIRED_REASON)
    if isinstance(error, MalformedAuthorization):
        return SocketRefused(MALFORMED, error.message)
    return SocketRefused(FORBIDDEN, error.message)


def close_reason(text: str) -> str:
    """`text`, cut on a character boundary to the bytes a close frame's reason may hold:
    a reason can quote what the caller sent (a token's `kid`), of any length."""
    encoded = text.encode()
    if len(encoded) <= REASON_BYTES:
        return text
    return encoded[: REASON_BYTES - 3].decode(errors="ignore") + "..."
