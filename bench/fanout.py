"""Scenario 3, live fan-out: how fast does a debit reach its subscribers, and what does an
idle subscription cost the server?

1. 10,000 websockets (graphql-transport-ws), each subscribed to `balanceChanged` of its own
   user. The service's resident memory before and after, divided by 10,000, is the memory
   per idle subscription. Then debits for random users at 50 a second, each sent on its
   schedule whether or not the ones before have been answered: the latency from the
   mutation's HTTP response to the event's arrival at that user's socket.
2. 1,000 websockets on ONE user (a user with 1,000 open tabs); one debit at a time: the
   time from sending the mutation until the last of the 1,000 has the event (from the
   request, not the response: the server may push all 1,000 events before it writes the
   response).
3. The service at the worker count `serve` picks for a deployment taking payments (one
   per core, each worker with its own change stream): 1,000 websockets, one per user, and
   debits for random users at 20 a second: the latency from response to event.

The sockets are opened by a process of their own (bench/subscribers.py), so that reading
the events costs the bench process (which sends the debits) nothing; each socket's reader
stamps an event's arrival (time.monotonic, one clock for every process of the machine) the
moment its frame is read. An event is matched to its debit by user and balance (`tokens`
of the event is the debit's `balanceAfter`), so a late event is never taken for the next
one. An event may arrive before the HTTP response (the change stream can beat the
response); its latency counts as 0.
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
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from bench import seed
from bench.debits import DEPLOYED_WORKERS
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

SUBSCRIBERS = 10_000
TABS = 1_000
DEPLOYED_SUBSCRIBERS = 1_000
DEPLOYED_DEBITS_PER_SECOND = 20
"""Part 3: one subscriber per user, at the worker count of a deployment taking payments."""
"""Subscribers of the one user of part 2."""
DEBITS_PER_SECOND = 50
TOKENS = 1_000_000
OPENING_TIMEOUT = 300.0
EVENT_TIMEOUT = 5.0
FANOUT_TIMEOUT = 30.0
MAX_SAMPLES = 2_000
MAX_ROUNDS = 20
MIN_ROUNDS = 3
SETTLE_SECONDS = 2.0
LATENCY_SECONDS_FACTOR = 2
"""Twice the bench's time at 50 debits a second: 500 samples for p99 at the default 5 s."""

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
            message: dict[str, Any] = orjson.loads(line)
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
        consume = _consumer(GraphQL(session, server.graphql_url), tokens, keys)

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
        paced = await _paced_debits(bench, users, consume, arrivals)
        summary = latency_summary(paced.latencies)
        missed = paced.missed
        log(
            f"fanout: {len(paced.latencies)} debits at {paced.rate:.1f}/s, p50 "
            f"{summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms, {missed} missed"
        )
        subscriber_errors = await clients.close()
        data.update(
            {
                "opening_seconds": round(opening, 2),
                "rss_before_kb": rss_before,
                "rss_after_kb": rss_after,
                "rss_per_subscription_kb": round(per_subscription_kb, 2),
                "debits_per_second": round(paced.rate, 1),
                "latency": summary,
                "missed_events": missed,
                "events_before_response": paced.early,
                "subscriber_errors": subscriber_errors,
            }
        )

        # 2. One user's 1,000 tabs: one debit reaches 1,000 sockets.
        opening = await clients.open([tokens[hot]] * TABS)
        await asyncio.sleep(SETTLE_SECONDS)
        rounds = await _fan_out_rounds(bench, hot, consume, arrivals)
        await clients.close()
        lasts = [r["last_ms"] for r in rounds if r["received"] == TABS]
        incomplete = sum(1 for r in rounds if r["received"] < TABS)
        last_p50 = percentile(lasts, 50)
        log(f"fanout: 1 -> {TABS}: last arrival p50 {last_p50:.1f} ms over {len(rounds)} rounds")
        data["one_user"] = {
            "opening_seconds": round(opening, 2),
            "rounds": rounds,
            "last_arrival_p50_ms": last_p50,
            "last_arrival_p95_ms": percentile(lasts, 95),
            "last_arrival_max_ms": max(lasts, default=math.nan),
            "incomplete_rounds": incomplete,
        }

    deployed = await _deployed_latency(bench, database, users[:DEPLOYED_SUBSCRIBERS], tokens, keys)
    data["deployed"] = deployed
    rows = [
        Row(
            f"live: debit response -> event, p50 ({SUBSCRIBERS:,} subscribers, 1 per user, "
            f"{DEBITS_PER_SECOND} debits/s)",
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
            f"live: 1 debit -> {TABS:,} subscribers of one user, request sent -> last "
            f"arrival (p50 of {len(rounds)} rounds)",
            last_p50,
            "ms",
            goal=Goal(GoalKind.AT_MOST, 100, "<= 100 ms"),
            errors=incomplete,
        ),
        Row(
            f"live: debit response -> event, p99 ({DEPLOYED_SUBSCRIBERS:,} subscribers, "
            f"{DEPLOYED_DEBITS_PER_SECOND} debits/s, {DEPLOYED_WORKERS} workers)",
            deployed["latency"]["p99_ms"],
            "ms",
            goal=Goal(GoalKind.AT_MOST, 100, "<= 100 ms"),
            errors=deployed["missed_events"],
        ),
        Row(
            f"live: server memory per idle subscription (RSS growth / {SUBSCRIBERS:,} subscribers)",
            per_subscription_kb,
            "KB",
            goal=Goal(GoalKind.AT_MOST, 40, "<= 40 KB"),
        ),
    ]
    notes = [
        f"**live**: {SUBSCRIBERS:,} graphql-transport-ws websockets from one aiohttp session "
        "in a process of their own, one `balanceChanged` subscription each. Latency: "
        f"`consumeTokens` for random users, {DEBITS_PER_SECOND} a second on a fixed schedule "
        "(each sent on time whatever the answers before it); from the mutation's HTTP response "
        "to the event's arrival at that user's socket (0 if it came first). Memory: the "
        f"service's VmRSS after the {SUBSCRIBERS:,} subscriptions have settled minus before "
        f"(after a warm-up with 20), divided by {SUBSCRIBERS:,}. One user: {TABS:,} sockets "
        "subscribed to one user, one debit at a time, from sending the mutation to the last "
        f"socket's arrival (the debit's own latency included: the server may push all "
        f"{TABS:,} events before it writes the HTTP response). Deployed: a service with "
        f"{DEPLOYED_WORKERS} workers, {DEPLOYED_SUBSCRIBERS:,} sockets (one per user), "
        f"{DEPLOYED_DEBITS_PER_SECOND} debits a second for random users, measured as above.",
    ]
    return ScenarioResult(name="fanout", rows=rows, data=data, notes=notes)


def _consumer(api: GraphQL, tokens: dict[str, str], keys: Iterator[int]) -> Consume:
    """Debits 1 token of a user, stamping when the request left and its answer came."""

    async def consume(user: str) -> Debit:
        sent = time.monotonic()
        variables = {
            "input": {"offerGroup": seed.GROUP, "tokens": 1, "idempotencyKey": f"live-{next(keys)}"}
        }
        result = await api.data(CONSUME, variables, token=tokens[user])
        responded = time.monotonic()
        return Debit((user, result["consumeTokens"]["balanceAfter"]), sent, responded)

    return consume


async def _deployed_latency(
    bench: Bench, database: str, users: list[str], tokens: dict[str, str], keys: Iterator[int]
) -> dict[str, Any]:
    """Part 3: the service at the worker count of a deployment taking payments, each worker
    with its own change stream: debit-to-event latency with one subscriber per user."""
    arrivals = Arrivals()
    async with (
        bench.service(database, workers=DEPLOYED_WORKERS) as server,
        http_session(0) as session,
        SubscriberProcess(server.ws_url, arrivals) as clients,
    ):
        consume = _consumer(GraphQL(session, server.graphql_url), tokens, keys)
        await clients.open([tokens[u] for u in users])
        await asyncio.sleep(SETTLE_SECONDS)
        paced = await _paced_debits(bench, users, consume, arrivals, DEPLOYED_DEBITS_PER_SECOND)
        await clients.close()
    summary = latency_summary(paced.latencies)
    log(
        f"fanout, {DEPLOYED_WORKERS} workers: {len(paced.latencies)} debits at "
        f"{paced.rate:.1f}/s, p99 {summary['p99_ms']:.1f} ms, {paced.missed} missed"
    )
    return {"latency": summary, "missed_events": paced.missed, "debits_per_second": paced.rate}


@dataclass(frozen=True, slots=True)
class Paced:
    latencies: list[float]
    """Per debit answered and seen: ms from its response to its event's arrival."""
    missed: int
    """Debits whose event did not arrive within EVENT_TIMEOUT."""
    early: int
    """Events that beat their debit's response."""
    rate: float
    """Debits answered per second, over the whole run."""


async def _paced_debits(
    bench: Bench,
    users: list[str],
    consume: Consume,
    arrivals: Arrivals,
    per_second: int = DEBITS_PER_SECOND,
) -> Paced:
    """Debits random users at `per_second` for twice the bench's time, each sent on its
    schedule (an open loop: a slow answer does not slow the load down)."""
    rng = random.Random(1000)
    count = int(LATENCY_SECONDS_FACTOR * bench.seconds * per_second)

    async def one(user: str) -> float | None:
        debit = await consume(user)
        try:
            async with asyncio.timeout(EVENT_TIMEOUT):
                (arrived,) = await arrivals.wait(debit.key, 1)
        except TimeoutError:
            arrivals.take(debit.key)
            return None
        return (arrived - debit.responded) * 1000

    started = time.monotonic()
    pending: list[asyncio.Task[float | None]] = []
    for n in range(count):
        await asyncio.sleep(max(0.0, started + n / per_second - time.monotonic()))
        pending.append(asyncio.create_task(one(rng.choice(users))))
    outcomes = await asyncio.gather(*pending)
    elapsed = time.monotonic() - started
    seen = [ms for ms in outcomes if ms is not None]
    return Paced(
        latencies=[max(0.0, ms) for ms in seen],
        missed=len(outcomes) - len(seen),
        early=sum(1 for ms in seen if ms < 0),
        rate=count / elapsed,
    )


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
                times = await arrivals.wait(key, TABS)
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
