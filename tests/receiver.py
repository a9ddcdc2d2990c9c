"""A webhook receiver for the tests: a real aiohttp server that records every request and
can be told to fail, answer an error, or hang."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: str

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = orjson.loads(self.body)
        return event

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    """Requests answered 2xx."""
    status: int = 204
    """What to answer."""
    fail_next: int = 0
    """Answer the next this many requests with 500."""
    delay: float = 0.0
    stall_next: int = 0
    """Leave the next this many requests unanswered for a minute (the sender gives up)."""
    hang: asyncio.Event | None = None
    """Set: each request waits for it before answering."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at every request and every answer."""

    async def handle(self, request: web.Request) -> web.Response:
        received = Received(dict(request.headers.items()), await request.text())
        received.headers = {k.lower(): v for k, v in received.headers.items()}
        self.requests.append(received)
        self.arrived.set()
        self.changed.set()
        if self.hang is not None:
            await self.hang.wait()
        if self.stall_next > 0:
            self.stall_next -= 1
            await asyncio.sleep(60)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="try later")
        if 200 <= self.status < 300:
            self.accepted.append(received)
            self.changed.set()
        return web.Response(status=self.status)

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.accepted]

    async def until(self, done: Callable[[], bool], seconds: float = 15) -> None:
        """Waits until `done()` holds; fails the test after `seconds`, saying what came."""
        try:
            async with asyncio.timeout(seconds):
                while not done():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            got = [(r.webhook_id, r.event.get("type")) for r in self.requests]
            raise AssertionError(f"waited {seconds} s; requests so far: {got}") from None

    async def wait_for(self, count: int, seconds: float = 15) -> list[Received]:
        """Waits until `count` requests were accepted."""
        await self.until(lambda: len(self.accepted) >= count, seconds)
        return self.accepted


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/hook"
    try:
        yield receiver
    finally:
        if receiver.hang is not None:
            receiver.hang.set()
        await runner.cleanup()
