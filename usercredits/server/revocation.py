"""Websockets signed in with an API key close once the key is revoked.

A token carries its end (`exp`), and its socket closes then (view.close_when_expired). An
API key has none, and a back end's socket may stay open for days after its key was
revoked. So one task of each process asks the authenticator again, every CHECK_SECONDS,
about each API key its open sockets signed in with (once per key, however many sockets
share it), and closes the sockets of a key that no longer signs in. Every instance checks
its own sockets against the database, so revoking a key through any instance closes its
sockets on all of them. Sockets are closed by tasks of their own, so that a peer that
does not answer the close cannot hold up the checks. (Each check counts as a use of the
key, so its `lastUsedAt` moves while its socket is open.) And each operation sent on such
a socket asks again first (`CurrentKeys`), as each HTTP request does: one sent in the
seconds before the checks close the socket is refused as unauthenticated. The close is
4403 (server/socket_closes.py): no fresh token brings a revoked key back.
"""

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from pymongo.errors import PyMongoError
from strawberry.extensions import SchemaExtension

from usercredits.server.socket_closes import FORBIDDEN
from usercredits.services.errors import Unauthenticated

log = logging.getLogger(__name__)

REVOKED = "the API key was revoked"
"""Why a revoked key's socket closes (4403: the key will not sign in again) and its
operations are refused."""

CHECK_SECONDS = 2.0

SignsIn = Callable[[str], Awaitable[object]]
"""Checks an `Authorization` value again; raises Unauthenticated when it no longer holds."""


class KeySockets:
    """The open sockets of this process signed in with an API key, by their header."""

    def __init__(self, signs_in: SignsIn, check_seconds: float = CHECK_SECONDS) -> None:
        self._signs_in = signs_in
        self._check_seconds = check_seconds
        self._headers: weakref.WeakKeyDictionary[web.WebSocketResponse, str] = (
            weakref.WeakKeyDictionary()
        )
        self._revoked: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._closing: set[asyncio.Task[bool]] = set()

    def add(self, ws: web.WebSocketResponse, header: str) -> None:
        self._headers[ws] = header

    async def run(self) -> None:
        """Checks the keys until cancelled; then waits for the closes under way."""
        try:
            while True:
                await asyncio.sleep(self._check_seconds)
                try:
                    await self.check()
                except Exception:  # a bug must not end the checks for the process's life
                    log.exception("API key check failed")
        finally:
            for task in self._closing:
                task.cancel()

    async def check(self) -> None:
        """Closes the open sockets of every key that no longer signs in."""
        by_header: dict[str, list[web.WebSocketResponse]] = {}
        for ws, header in list(self._headers.items()):
            if not ws.closed:
                by_header.setdefault(header, []).append(ws)
        for header, sockets in by_header.items():
            try:
                await self._signs_in(header)
            except Unauthenticated:
                for ws in sockets:
                    self._close(ws)
            except PyMongoError as exc:  # the database is away: check again next time
                log.warning("API key check skipped", extra={"error": str(exc)})

    async def verify(self, ws: web.WebSocketResponse) -> None:
        """Raises Unauthenticated when `ws` signed in with an API key that no longer signs
        in, and closes it."""
        if ws in self._revoked:
            raise Unauthenticated(REVOKED)
        header = self._headers.get(ws)
        if header is None:
            return
        try:
            await self._signs_in(header)
        except Unauthenticated:
            self._close(ws)
            raise

    def _close(self, ws: web.WebSocketResponse) -> None:
        if ws not in self._headers:
            return  # closed once, whatever the peer does
        del self._headers[ws]
        self._revoked.add(ws)
        task = asyncio.create_task(ws.close(code=FORBIDDEN, message=REVOKED.encode()))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


class CurrentKeys(SchemaExtension):
    """Each operation on a websocket signed in with an API key first asks whether the key
    still signs in."""

    def __init__(self, *, sockets: KeySockets) -> None:
        self._sockets = sockets

    async def on_execute(self) -> AsyncIterator[None]:
        # Not on_operation: an error raised there ends a subscription without a word.
        ws = getattr(self.execution_context.context, "websocket", None)
        if ws is not None:
            await self._sockets.verify(ws)
        yield
