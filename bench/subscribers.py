"""The fan-out scenario's websocket clients, in a process of their own
(`python -m bench.subscribers WS_URL`), so that reading a thousand events costs the bench
process nothing and the server's figures are the server's.

It speaks JSON lines. On stdin, commands: `{"open": [token, ...]}` opens one
graphql-transport-ws socket per token, each with one `balanceChanged` subscription, and
answers `{"opened": n, "seconds": s}`; `{"close": true}` closes them all and answers
`{"closed": n, "errors": [...]}`. On stdout, besides the answers, each event as it arrives:
`{"user": id, "tokens": n, "at": t}`, `t` being time.monotonic() the moment its frame was
read (one clock for every process of the machine).
"""

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import orjson

from usercredits.server.cli import new_event_loop

SUBSCRIBE = "subscription { balanceChanged { userId tokens delta } }"
OPENING_AT_ONCE = 50


QUIET_SECONDS = 0.02
LONGEST_WAIT_SECONDS = 0.2
"""Events are written out once none has arrived for QUIET_SECONDS (or the oldest waiting
has waited LONGEST_WAIT_SECONDS), so that neither this process writing them nor the bench
reading them takes a core from the server while it is still sending a burst. The times
written are those stamped on arrival, so when they are written changes no figure."""
pending: list[bytes] = []
last_arrival = 0.0
first_pending = 0.0


def say(message: dict[str, Any]) -> None:
    global last_arrival, first_pending
    last_arrival = time.monotonic()
    if not pending:
        first_pending = last_arrival
    pending.append(orjson.dumps(message))


async def flush_forever() -> None:
    while True:
        await asyncio.sleep(QUIET_SECONDS / 2)
        now = time.monotonic()
        quiet = now - last_arrival >= QUIET_SECONDS
        if pending and (quiet or now - first_pending >= LONGEST_WAIT_SECONDS):
            sys.stdout.buffer.write(b"\n".join(pending) + b"\n")
            sys.stdout.flush()
            pending.clear()


class Subscriber:
    """One websocket with one `balanceChanged` subscription, read by its own task."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.errors: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, token: str) -> "Subscriber":
        ws = await session.ws_connect(url, protocols=["graphql-transport-ws"], autoping=True)
        await ws.send_json(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        )
        ack = await ws.receive_json(timeout=30)
        if ack.get("type") != "connection_ack":
            await ws.close()
            raise RuntimeError(f"websocket refused: {ack}")
        await ws.send_json(
            {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE, "variables": {}}}
        )
        return cls(ws)

    async def _read(self) -> None:
        async for message in self.ws:
            arrived = time.monotonic()
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            parsed: dict[str, Any] = orjson.loads(message.data)
            kind = parsed.get("type")
            if kind == "next":
                event = parsed["payload"]["data"]["balanceChanged"]
                say({"user": event["userId"], "tokens": event["tokens"], "at": arrived})
            elif kind == "ping":
                await self.ws.send_json({"type": "pong"})
            elif kind in ("error", "complete"):
                self.errors.append(str(parsed)[:300])

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


async def main(url: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    subscribers: list[Subscriber] = []
    flusher = asyncio.create_task(flush_forever())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(token: str) -> Subscriber:
            async with gate:
                return await Subscriber.open(session, url, token)

        while line := await reader.readline():
            command = json.loads(line)
            if "open" in command:
                started = time.monotonic()
                subscribers = list(await asyncio.gather(*(one(t) for t in command["open"])))
                say({"opened": len(subscribers), "seconds": time.monotonic() - started})
            elif command.get("close"):
                await asyncio.gather(*(s.close() for s in subscribers))
                errors = [e for s in subscribers for e in s.errors][:5]
                say({"closed": len(subscribers), "errors": errors})
                subscribers = []
    flusher.cancel()


if __name__ == "__main__":
    # The server's loop (uvloop), so that the clients read as fast as the server writes.
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main(sys.argv[1]))
