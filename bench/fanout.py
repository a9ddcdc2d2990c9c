"""Scenario 3, live fan-out: how fast does a debit reach its subscribers, and what does an
idle subscription cost the server?

1. 1,000 websockets (graphql-transport-ws), each subscribed to `balanceChanged` of its own
   user. The service's resident memory before and after, divided by 1,000, is the memory
   per idle subscription. Then debits for random users, one at a time: the latency from the
   mutation's HTTP response to the event's arrival at that user's socket.
2. The same 1,000 websockets re-opened on ONE user; one debit: the time from sending the
   mutation until the last of the 1,000 has the event (from the request, not the response:
   the server may push all 1,000 events before it writes the response).

The sockets are opened by a process of their own (bench/subscribers.py), so that reading
the events costs the bench process (which sends the debits) nothing; each socket's reader
stamps an event's arrival (time.monotonic, one clock for every process of the machine) the
moment its frame is read. An event is matched to
its debit by user and balance (`tokens` of the event is the debit's `balanceAfter`), so a
late event is never taken for the next one. An event may arrive before the HTTP response
(the change stream can beat the response); its latency counts as 0.
"""

import asyncio
import contextlib
import itertools
import json
import math
import random
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench import seed
from bench.harness import (
    PROJECT_ROOT,
    Bench,
    BenchFailure,
    GraphQL,
    http_session,
    log,
    user_token,
)
from bench.load import latency_summary, percentile
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.server import children
from usercredits.server.database import init_models

SUBSCRIBERS = 1_000
TOKENS = 1_000_000
OPENING_TIMEOUT = 120.0
EVENT_TIMEOUT = 5.0
FANOUT_TIMEOUT = 30.0
MAX_SAMPLES = 2_000
MAX_ROUNDS = 20
MIN_ROUNDS = 3
SETTLE_SECONDS = 2.0
LATENCY_SECONDS_FACTOR = 2
"""Debits are sequential here (~30 ms each): twice the time gives p99 enough samples."""

CONSUME = (
    "mutation Consume($input: ConsumeTokensInput!) "
    "{ consumeTokens(input: $input) { balanceAfter } }"
)

Key = tuple[str, int]
"""(user id, balance after the debit): identifies one event."""


@dataclass(frozen=True, slots=True)
class Debit:
    key: Key
    sent: float
    """When the mutation's request was sent (time.monotonic)."""
    responded: float
    """When its response had arrived."""


Consume = Callable[[str], Awaitable[Debit]]
"""Debits 1 token of a user through `consumeTokens`."""


class Arrivals:
    """Arrival times of events, by key; `wait` returns once `count` of a key arrived."""

    def __init__(self) -> None:
        self._times: dict[Key, list[float]] = defaultdict(list)
        self._waiting: dict[Key, tuple[int, asyncio.Future[None]]] = {}

    def record(self, key: Key, at: float) -> None:
        times = self._times[key]
        times.append(at)
        waiting = self._waiting.get(key)
        if waiting is not None and len(times) >= waiting[0] and not waiting[1].done():
            waiting[1].set_result(None)

    async def wait(self, key: Key, count: int) -> list[float]:
        """The arrival times of `key` once `count` arrived (callers bound the wait with
        `asyncio.timeout`; what arrived stays readable with `take`)."""
        if len(self._times[key]) < count:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[key] = (count, future)
            try:
                await future
            finally:
                del self._waiting[key]
        return self.take(key)

    def take(self, key: Key) -> list[float]:
        return self._times.pop(key, [])


class SubscriberProcess:
    """The websocket clients, in a process of their own (bench/subscribers.py): they open
    and close subscriptions on command, and each event's arrival goes to `arrivals`."""

    def __init__(self, url: str, arrivals: Arrivals) -> None:
        self._url = url
        self._arrivals = arrivals
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "SubscriberProcess":
        self._process = await children.spawn(
            sys.executable,
            *("-m", "bench.subscribers", self._url),
            cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**20,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            message: dict[str, Any] = json.loads(line)
            if "user" in message:
                self._arrivals.record((message["user"], message["tokens"]), message["at"])
            else:
                self._answers.put_nowait(message)

    async def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        await self._process.stdin.drain()
        async with asyncio.timeout(OPENING_TIMEOUT):
            return await self._answers.get()

    async def open(self, tokens: list[str]) -> float:
        """Opens one subscriber per token; the seconds it took."""
        answer = await self._ask({"open": tokens})
        if answer["opened"] != len(tokens):
            raise BenchFailure(f"opened {answer['opened']} of {len(tokens)} subscribers")
        seconds: float = answer["seconds"]
        return seconds

    async def close(self) -> list[str]:
        """Closes every subscriber; the first errors they saw."""
        errors: list[str] = (await self._ask({"close": True}))["errors"]
        return errors

    async def __aexit__(self, *exc_info: object) -> None:
        if self._process is not None:
            await children.stop(self._process)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def run(bench: Bench) -> ScenarioResult:
    database = bench.database_name("fanout")
    await init_models(bench.client, database)
    users = seed.users("live", SUBSCRIBERS)
    hot = "live-hot"
    await seed.wallets(bench.client, database, [*users, hot], TOKENS)
    tokens = {u: user_token(u) for u in [*users, hot]}
    arrivals = Arrivals()
    keys = itertools.count()
    data: dict[str, Any] = {"subscribers": SUBSCRIBERS}

    async with (
        bench.service(database) as server,
        http_session(0) as session,
        SubscriberProcess(server.ws_url, arrivals) as clients,
    ):
        api = GraphQL(session, server.graphql_url)

        async def consume(user: str) -> Debit:
            sent = time.monotonic()
            result = await api.data(
                CONSUME,
                {
                    "input": {
                        "offerGroup": seed.GROUP,
                        "tokens": 1,
                        "idempotencyKey": f"live-{next(keys)}",
                    }
                },
                token=tokens[user],
            )
            responded = time.monotonic()
            return Debit((user, result["consumeTokens"]["balanceAfter"]), sent, responded)

        # Warm the server's websocket and subscription paths, so the memory measured next
        # is what subscriptions cost, not first-use imports and caches.
        await clients.open([tokens[u] for u in users[:20]])
        await asyncio.sleep(SETTLE_SECONDS / 2)
        key = (await consume(users[0])).key
        async with asyncio.timeout(EVENT_TIMEOUT):
            await arrivals.wait(key, 1)
        await clients.close()
        await asyncio.sleep(SETTLE_SECONDS)

        # 1. One subscriber per user: memory, then latency of random debits.
        rss_before = server.rss_kb()
        opening = await clients.open([tokens[u] for u in users])
        await asyncio.sleep(SETTLE_SECONDS)
        rss_after = server.rss_kb()
        per_subscription_kb = (rss_after - rss_before) / SUBSCRIBERS
        log(
            f"fanout: {SUBSCRIBERS} subscribers opened in {opening:.1f} s; "
            f"RSS {rss_before} -> {rss_after} KB ({per_subscription_kb:.1f} KB each)"
        )
        latencies, missed, early = await _random_debits(bench, users, consume, arrivals)
        summary = latency_summary(latencies)
        log(
            f"fanout: {len(latencies)} debits, p50 {summary['p50_ms']:.1f} ms, "
            f"p99 {summary['p99_ms']:.1f} ms, {missed} missed"
        )
        subscriber_errors = await clients.close()
        data.update(
            {
                "opening_seconds": round(opening, 2),
                "rss_before_kb": rss_before,
                "rss_after_kb": rss_after,
                "rss_per_subscription_kb": round(per_subscription_kb, 2),
                "latency": summary,
                "missed_events": missed,
                "events_before_response": early,
                "subscriber_errors": subscriber_errors,
            }
        )

        # 2. All subscribers on one user: one debit reaches 1,000 sockets.
        opening = await clients.open([tokens[hot]] * SUBSCRIBERS)
        await asyncio.sleep(SETTLE_SECONDS)
        rounds = await _fan_out_rounds(bench, hot, consume, arrivals)
        await clients.close()
        lasts = [r["last_ms"] for r in rounds if r["received"] == SUBSCRIBERS]
        incomplete = sum(1 for r in rounds if r["received"] < SUBSCRIBERS)
        last_p50 = percentile(lasts, 50)
        log(
            f"fanout: 1 -> {SUBSCRIBERS}: last arrival p50 {last_p50:.1f} ms "
            f"over {len(rounds)} rounds"
        )
        data["one_user"] = {
            "opening_seconds": round(opening, 2),
            "rounds": rounds,
            "last_arrival_p50_ms": last_p50,
            "last_arrival_p95_ms": percentile(lasts, 95),
            "last_arrival_max_ms": max(lasts, default=math.nan),
            "incomplete_rounds": incomplete,
        }

    rows = [
        Row(
            f"live: debit response -> event, p50 ({SUBSCRIBERS:,} subscribers, 1 per user)",
            summary["p50_ms"],
            "ms",
            errors=missed,
        ),
        Row(
            f"live: debit response -> event, p95 ({SUBSCRIBERS:,} subscribers)",
            summary["p95_ms"],
            "ms",
            errors=missed,
        ),
        Row(
            f"live: debit response -> event, p99 ({SUBSCRIBERS:,} subscribers)",
            summary["p99_ms"],
            "ms",
            goal=Goal(GoalKind.AT_MOST, 100, "<= 100 ms"),
            errors=missed,
        ),
        Row(
            f"live: 1 debit -> {SUBSCRIBERS:,} subscribers of one user, request sent -> last "
            f"arrival (p50 of {len(rounds)} rounds)",
            last_p50,
            "ms",
            errors=incomplete,
        ),
        Row(
            "live: server memory per idle subscription (RSS growth / subscribers)",
            per_subscription_kb,
            "KB",
            goal=Goal(GoalKind.AT_MOST, 64, "<= 64 KB"),
        ),
    ]
    notes = [
        f"**live**: {SUBSCRIBERS:,} graphql-transport-ws websockets from one aiohttp session "
        "in a process of their own, one `balanceChanged` subscription each. Latency: sequential "
        "`consumeTokens` for random users; from the mutation's HTTP response to the event's "
        "arrival at that user's socket (0 if it came first). Memory: the service's VmRSS "
        f"after the {SUBSCRIBERS:,} subscriptions have settled minus before (after a warm-up "
        f"with 20), divided by {SUBSCRIBERS:,}. One user: {SUBSCRIBERS:,} sockets subscribed "
        "to one user, one debit at a time, from sending the mutation to the last socket's "
        "arrival (the debit's own latency included: the server may push all 1,000 events "
        "before it writes the HTTP response).",
    ]
    return ScenarioResult(name="fanout", rows=rows, data=data, notes=notes)


async def _random_debits(
    bench: Bench, users: list[str], consume: Consume, arrivals: Arrivals
) -> tuple[list[float], int, int]:
    """Debits random users one at a time for twice the bench's time; latencies in ms,
    events missed, and events that beat the response."""
    rng = random.Random(1000)
    latencies: list[float] = []
    missed = early = 0
    deadline = time.monotonic() + LATENCY_SECONDS_FACTOR * bench.seconds
    while time.monotonic() < deadline and len(latencies) < MAX_SAMPLES:
        debit = await consume(rng.choice(users))
        key, responded = debit.key, debit.responded
        try:
            async with asyncio.timeout(EVENT_TIMEOUT):
                (arrived,) = await arrivals.wait(key, 1)
        except TimeoutError:
            arrivals.take(key)
            missed += 1
            continue
        if arrived < responded:
            early += 1
        latencies.append(max(0.0, arrived - responded) * 1000)
    return latencies, missed, early


async def _fan_out_rounds(
    bench: Bench, hot: str, consume: Consume, arrivals: Arrivals
) -> list[dict[str, Any]]:
    rounds: list[dict[str, Any]] = []
    deadline = time.monotonic() + bench.seconds
    while len(rounds) < MAX_ROUNDS and (len(rounds) < MIN_ROUNDS or time.monotonic() < deadline):
        debit = await consume(hot)
        key = debit.key
        try:
            async with asyncio.timeout(FANOUT_TIMEOUT):
                times = await arrivals.wait(key, SUBSCRIBERS)
        except TimeoutError:
            times = arrivals.take(key)
        rounds.append(
            {
                "received": len(times),
                "debit_ms": _ms(debit.responded - debit.sent),
                "first_ms": _ms(min(times) - debit.sent) if times else None,
                "p50_ms": _ms(percentile(times, 50) - debit.sent) if times else None,
                "last_ms": _ms(max(times) - debit.sent) if times else None,
                "last_after_response_ms": _ms(max(times) - debit.responded) if times else None,
            }
        )
    return rounds


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
