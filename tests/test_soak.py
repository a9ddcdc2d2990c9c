"""Soak: many live subscribers under a steady stream of debits, then everyone leaves.

N websocket subscribers (graphql-transport-ws), each its own user with a granted balance,
listen to `balanceChanged` while workers debit random users with `consumeTokens` for
SOAK_SECONDS. It proves that:

- no response carries an error and no subscriber sees an error or a dropped socket;
- every subscriber receives exactly the events of its own user's debits: as many as were
  made, in order (each balance one below the last), none of anyone else's;
- once the clients leave, the server holds no subscription (`usercredits_open_subscriptions`
  in /metrics is back to 0), its asyncio tasks return to their count before the round, and
  its memory (RSS of a server in its own process), open files and threads stop growing.

USERCREDITS_SOAK_SUBSCRIBERS (default 100) and USERCREDITS_SOAK_SECONDS (default 10) size it;
`make soak` runs 500 subscribers for 60 s.
"""

import asyncio
import json
import os
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api import token
from tests.conftest import SpawnServer, StartServer
from tests.waits import metric, until
from usercredits.services.identity.access import Role

pytestmark = pytest.mark.reliability

SUBSCRIBERS = int(os.environ.get("USERCREDITS_SOAK_SUBSCRIBERS", "100"))
SOAK_SECONDS = float(os.environ.get("USERCREDITS_SOAK_SECONDS", "10"))
WORKERS = int(os.environ.get("USERCREDITS_SOAK_WORKERS", "8"))
GRANTED = 1_000_000  # each user's starting balance: never runs out during a soak

ADMIN = token("admin-1", Role.ADMIN)
SERVICE = token("backend-1", Role.SERVICE)
BALANCE = "subscription { balanceChanged { userId offerGroup tokens delta reason } }"
GRANT = """mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { id } }"""
CONSUME = """mutation C($input: ConsumeTokensInput!) { consumeTokens(input: $input) {
  balanceAfter } }"""

Capsys = pytest.CaptureFixture[str]


def report(capsys: Capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[soak] {line}")


@dataclass
class Subscriber:
    """One user's websocket and what arrived on it."""

    user: str
    ws: aiohttp.ClientWebSocketResponse
    balances: list[int] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    leaving: bool = False
    reader: "asyncio.Task[None] | None" = None

    async def read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            parsed = json.loads(message.data)
            if parsed["type"] == "ping":
                await self.ws.send_json({"type": "pong"})
                continue
            payload = parsed.get("payload") or {}
            event = (payload.get("data") or {}).get("balanceChanged")
            if parsed["type"] != "next" or payload.get("errors") or event is None:
                self.faults.append(f"{self.user}: {parsed}")
                continue
            if (event["userId"], event["reason"], event["delta"]) != (
                self.user,
                "consumption",
                -1,
            ):
                self.faults.append(f"{self.user} got someone else's or a wrong event: {event}")
            self.balances.append(event["tokens"])
        if not self.leaving:
            self.faults.append(f"{self.user}: the socket closed under it ({self.ws.close_code})")


async def subscribe(session: aiohttp.ClientSession, base: str, user: str) -> Subscriber:
    ws = await session.ws_connect(
        base.replace("http://", "ws://") + "/graphql", protocols=["graphql-transport-ws"]
    )
    await ws.send_json(
        {"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}}
    )
    ack = await ws.receive_json(timeout=30)
    assert ack["type"] == "connection_ack", ack
    await ws.send_json({"id": "b", "type": "subscribe", "payload": {"query": BALANCE}})
    subscriber = Subscriber(user, ws)
    subscriber.reader = asyncio.create_task(subscriber.read())
    return subscriber


async def answered(
    session: aiohttp.ClientSession, base: str, query: str, given: dict[str, Any], token: str
) -> dict[str, Any]:
    """The answer to a mutation of `input` sent as `token`, which must have no errors."""
    async with session.post(
        f"{base}/graphql",
        json={"query": query, "variables": {"input": given}},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200 and not body.get("errors"), body
    return body


async def grant_everyone(base: str, users: list[str]) -> None:
    """Grants each user GRANTED tokens and waits until the server's change feed has seen
    every grant, so that no grant event reaches a subscriber that connects afterwards."""
    async with aiohttp.ClientSession() as session:
        gate = asyncio.Semaphore(16)

        async def grant(user: str) -> None:
            grant_input = {
                "userId": user,
                "offerGroup": "soak",
                "tokens": GRANTED,
                "idempotencyKey": f"grant-{user}",
            }
            async with gate:
                await answered(session, base, GRANT, grant_input, ADMIN)

        await asyncio.gather(*(grant(u) for u in users))

        async def all_seen() -> bool:
            seen = await metric(session, base, "usercredits_ledger_entries_total", reason="grant")
            return seen >= len(users)

        await until(all_seen, seconds=60, every=0.1, what="the change feed saw every grant")


@dataclass
class Round:
    seconds: float
    consumes: int = 0
    markers: int = 0
    """Debits after the round, one per user, that show every subscriber got all it would."""
    errors: list[str] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)
    received: int = 0
    peak_subscriptions: float = 0

    @property
    def rate(self) -> float:
        return self.consumes / self.seconds


async def soak_round(base: str, users: list[str], seconds: float, label: str) -> Round:
    """Connects a subscriber per user, debits random users for `seconds`, checks that every
    subscriber got exactly its own debits, then disconnects everyone and waits until the
    server holds no subscription. Every client session is closed on return."""
    result = Round(seconds)
    connector = aiohttp.TCPConnector(limit=0)  # one socket per subscriber, no pool cap
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = asyncio.Semaphore(50)

        async def connect(user: str) -> Subscriber:
            async with gate:
                return await subscribe(session, base, user)

        subscribers = await asyncio.gather(*(connect(u) for u in users))

        async def all_listening() -> bool:
            count = await metric(session, base, "usercredits_open_subscriptions")
            result.peak_subscriptions = max(result.peak_subscriptions, count)
            return count == len(users)

        await until(
            all_listening, seconds=60, every=0.1, what=f"{len(users)} subscriptions registered"
        )

        async def worker(number: int) -> None:
            rng = random.Random(f"{label}-{number}")
            deadline = time.monotonic() + seconds
            sent = 0
            while time.monotonic() < deadline:
                user = rng.choice(users)
                debit = {
                    "userId": user,
                    "offerGroup": "soak",
                    "tokens": 1,
                    "idempotencyKey": f"{label}-{number}-{sent}",
                }
                sent += 1
                try:
                    async with session.post(
                        f"{base}/graphql",
                        json={"query": CONSUME, "variables": {"input": debit}},
                        headers={"Authorization": f"Bearer {SERVICE}"},
                    ) as response:
                        text = await response.text()
                        if response.status != 200 or json.loads(text).get("errors"):
                            result.errors.append(f"{response.status}: {text[:300]}")
                            continue
                except aiohttp.ClientError as exc:
                    result.errors.append(f"{debit}: {exc!r}")
                    continue
                result.expected[user] += 1
                result.consumes += 1

        await asyncio.gather(*(worker(n) for n in range(WORKERS)))

        async def all_delivered() -> bool:
            return all(len(s.balances) >= result.expected[s.user] for s in subscribers)

        await until(
            all_delivered,
            seconds=30 + seconds,
            every=0.1,
            what="every debit reached its subscriber",
        )
        # A marker debit per user: anything extra a subscriber would get (a duplicate,
        # someone else's event) comes before its marker, as its events come in commit order.
        marks: dict[str, int] = {}

        async def mark(user: str) -> None:
            debit = {
                "userId": user,
                "offerGroup": "soak",
                "tokens": 1,
                "idempotencyKey": f"{label}-marker",
            }
            async with gate:
                body = await answered(session, base, CONSUME, debit, SERVICE)
            marks[user] = body["data"]["consumeTokens"]["balanceAfter"]
            result.expected[user] += 1
            result.markers += 1

        await asyncio.gather(*(mark(u) for u in users))

        async def all_marked() -> bool:
            return all(marks[s.user] in s.balances for s in subscribers)

        await until(all_marked, seconds=30, every=0.1, what="every marker reached its subscriber")

        for s in subscribers:
            result.received += len(s.balances)
            result.errors.extend(s.faults)
            if len(s.balances) != result.expected[s.user]:
                result.errors.append(
                    f"{s.user}: {len(s.balances)} events for {result.expected[s.user]} debits"
                )
            steps = [a - b for a, b in zip(s.balances, s.balances[1:], strict=False)]
            if any(step != 1 for step in steps):
                result.errors.append(f"{s.user}: balances out of order: {s.balances[:20]}")

        # Everyone leaves.
        for s in subscribers:
            s.leaving = True
        await asyncio.gather(*(s.ws.close() for s in subscribers))
        await asyncio.gather(*(s.reader for s in subscribers if s.reader is not None))

        async def nobody_left() -> bool:
            return await metric(session, base, "usercredits_open_subscriptions") == 0

        await until(
            nobody_left,
            seconds=30,
            every=0.1,
            what="open subscriptions back to 0 after everyone left",
        )
    return result


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (KiB), threads, open files and CPU time used (ms) of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    fields["files"] = len(os.listdir(f"/proc/{pid}/fd"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    fields["cpu_ms"] = (int(stat[11]) + int(stat[12])) * 1000 // os.sysconf("SC_CLK_TCK")
    return fields


def enough_file_descriptors(count: int) -> None:
    """Each subscriber is a socket on both ends (a spawned server inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * count + 512
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def users_for(count: int) -> list[str]:
    return [f"soak-{i:04d}" for i in range(count)]


def round_line(name: str, r: Round) -> str:
    return (
        f"{name}: {SUBSCRIBERS} subscribers, {r.consumes} debits in {r.seconds:.0f}s "
        f"({r.rate:.0f}/s) by {WORKERS} workers and {r.markers} markers after, "
        f"{r.received} events received, "
        f"errors: {len(r.errors)}, lost: {r.consumes + r.markers - r.received}"
    )


async def test_soak_a_server_process(spawn_server: SpawnServer, capsys: Capsys) -> None:
    enough_file_descriptors(SUBSCRIBERS)
    server = await spawn_server(USERCREDITS_SWEEP_INTERVAL_SECONDS="0")
    pid = server.process.pid
    users = users_for(SUBSCRIBERS)
    await grant_everyone(server.url, users)
    started = proc_status(pid)

    # The warm-up round fills what a server fills once (connection pools, parser and
    # validation caches, metric series, allocator arenas); growth is measured after it.
    warm_up = await soak_round(server.url, users, max(2.0, SOAK_SECONDS / 4), "warm-up")
    assert warm_up.errors == [], warm_up.errors[:10]
    await asyncio.sleep(1)
    warm = proc_status(pid)

    soak = await soak_round(server.url, users, SOAK_SECONDS, "soak")
    await asyncio.sleep(1)
    after = proc_status(pid)
    async with aiohttp.ClientSession() as session:
        seen = await metric(
            session, server.url, "usercredits_ledger_entries_total", reason="consumption"
        )
        ok = await metric(
            session,
            server.url,
            "usercredits_graphql_operations_total",
            operation="consumeTokens",
            outcome="ok",
        )
        open_now = await metric(session, server.url, "usercredits_open_subscriptions")

    growth_kib = after["VmRSS"] - warm["VmRSS"]
    # The bound: after the warm-up, a server that frees what each connection, subscription
    # and request holds stays flat, up to allocator noise (CPython and glibc keep freed
    # arenas, caches settle). Allow 30% of the warm RSS or 40 MiB, whichever is larger. A
    # real leak is far above it: one websocket handler with its buffers, tasks and queue is
    # ~100 KiB, so a leaked round of 500 is ~50 MiB; 100 leaked bytes per debit over a
    # 60 s soak (~20k debits) with its response is several MiB and grows with time.
    allowed_kib = max(40 * 1024, int(warm["VmRSS"] * 0.30))
    report(capsys, round_line("warm-up", warm_up))
    report(capsys, round_line("soak", soak))
    report(
        capsys,
        f"server pid {pid}: RSS {started['VmRSS'] / 1024:.1f} MiB at start, "
        f"{warm['VmRSS'] / 1024:.1f} after warm-up, {after['VmRSS'] / 1024:.1f} after the soak "
        f"(growth {growth_kib / 1024:+.1f} MiB, allowed {allowed_kib / 1024:.1f}); "
        f"threads {warm['Threads']} -> {after['Threads']}; open files {warm['files']} -> "
        f"{after['files']}; CPU {(after['cpu_ms'] - warm['cpu_ms']) / 1000:.1f}s over the "
        f"soak; open subscriptions now {open_now:.0f}; change feed saw "
        f"{seen:.0f} debits, /metrics counted {ok:.0f} ok consumeTokens",
    )
    assert soak.errors == [], soak.errors[:10]
    assert soak.received == soak.consumes + soak.markers > 0
    debits = warm_up.consumes + warm_up.markers + soak.consumes + soak.markers
    assert seen == ok == debits
    assert open_now == 0
    assert growth_kib < allowed_kib, f"RSS grew {growth_kib} KiB over the soak"
    assert after["files"] <= warm["files"] + 16, (warm, after)
    assert after["Threads"] <= warm["Threads"] + 4, (warm, after)


async def test_soak_leaves_no_tasks_behind(start_server: StartServer, capsys: Capsys) -> None:
    """The same round against a server in this process, whose asyncio tasks can be counted:
    after everyone left, the loop holds as many tasks as before the round."""
    base = await start_server()
    users = users_for(SUBSCRIBERS)
    await grant_everyone(base, users)
    await asyncio.sleep(0.5)  # the grant session's connections are gone
    before = len(asyncio.all_tasks())
    result = await soak_round(base, users, max(2.0, SOAK_SECONDS / 2), "in-process")
    counts: list[int] = []

    async def back_to_before() -> bool:
        counts.append(len(asyncio.all_tasks()))
        return counts[-1] <= before

    try:
        await until(back_to_before, seconds=15, every=0.1, what=f"asyncio tasks back to {before}")
    finally:
        report(capsys, round_line("in-process", result))
        report(
            capsys,
            f"asyncio tasks: {before} before the round, {counts[-1] if counts else '?'} after "
            f"everyone left (peak subscriptions {result.peak_subscriptions:.0f}, now 0)",
        )
    assert result.errors == [], result.errors[:10]
    assert result.received == result.consumes + result.markers > 0
