"""Scenario 1, debit throughput: what does a debit cost on top of the database's floor?

Ways of spending one token, each by 32 concurrent clients, each debit for one of 200
funded users chosen at random (so two clients may debit one user at once, as real traffic
does), with 10,000 other balances in the collection, for the same bounded time:

- raw: the database's minimal write, `update_one({_id, tokens: {$gte: 1}},
  {$inc: {tokens: -1}})` on a minimal document `{_id, tokens}` with only the `_id` index
  (PyMongo, in this process, another database of the same server);
- service: `services.wallets.consume` called in this process (read the balance, check the
  key, one compare-and-set write, the ledger insert), no GraphQL;
- GraphQL: the `consumeTokens` mutation over HTTP to `usercredits serve` in its own
  processes, at the worker count `serve` picks for a deployment taking payments (one per
  core), and again with one worker.

Beside each throughput: the server's and the database's CPU per operation, and the
database's commands per operation (bench/cost.py). The ways take turns, so that a slow
spell of the machine falls on all of them alike; each service runs alone with the raw
baseline, so that no idle service's change stream is paid by the other's debits.
"""

import asyncio
import itertools
import os
import random
from pathlib import Path
from typing import Any

from bench import profile, seed
from bench.cost import Meter
from bench.harness import Bench, BenchFailure, GraphQL, http_session, log, user_token
from bench.load import LoadResult, Operation, alternating, closed_loop
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.server.database import init_models
from usercredits.services import build_services
from usercredits.services.clock import SystemClock
from usercredits.services.payments import SandboxPaymentClient

CLIENTS = 32
WALLETS = 200
OTHER_BALANCES = 10_000
TOKENS = 1_000_000_000
TURNS = 5
DEPLOYED_WORKERS = os.cpu_count() or 1
"""What `serve` runs with Stripe configured: one worker per core."""

CONSUME = (
    "mutation Consume($input: ConsumeTokensInput!) "
    "{ consumeTokens(input: $input) { balanceAfter } }"
)
RAW = "raw minimal $inc"
SERVICE = "services.wallets.consume"
GRAPHQL = f"consumeTokens over HTTP, {DEPLOYED_WORKERS} workers"
ONE_WORKER = "consumeTokens over HTTP, 1 worker"


async def run(bench: Bench) -> ScenarioResult:
    served = bench.database_name("debits")
    local = bench.database_name("debits-local")
    floor = bench.database_name("debits-minimal")
    users = seed.users("debit", WALLETS)
    others = seed.users("other", OTHER_BALANCES)
    for database in (served, local):
        await init_models(bench.client, database)
        await seed.wallets(bench.client, database, users, TOKENS)
        await seed.wallets(bench.client, database, others, 100)
    await seed.minimal(bench.client, floor, WALLETS + OTHER_BALANCES, TOKENS)
    keys = itertools.count()
    minimal = bench.client[floor][seed.MINIMAL]

    async def raw_debit(worker: int) -> None:
        n = random.randrange(WALLETS)
        result = await minimal.update_one(
            {"_id": n, "tokens": {"$gte": 1}}, {"$inc": {"tokens": -1}}
        )
        if result.modified_count != 1:
            raise BenchFailure(f"the raw debit of {n} matched nothing")

    services = build_services(
        database=bench.client[local],
        payments=SandboxPaymentClient(),
        clock=SystemClock(),
        default_currency="USD",
    )

    async def service_debit(worker: int) -> None:
        await services.wallets.consume(
            user_id=random.choice(users),
            offer_group=seed.GROUP,
            tokens=1,
            idempotency_key=f"service-{next(keys)}",
        )

    tokens = {u: user_token(u) for u in users}
    meter = await Meter.of(bench.client)
    measured: dict[str, LoadResult] = {}
    profile_lines: list[str] = []
    profile_data: dict[str, Any] = {}
    for workers, name in ((DEPLOYED_WORKERS, GRAPHQL), (1, ONE_WORKER)):
        async with (
            bench.service(served, workers=workers) as server,
            http_session(CLIENTS) as session,
        ):
            graphql_debit = _graphql_debit(GraphQL(session, server.graphql_url), users, tokens)
            ways: dict[str, Operation] = {RAW: raw_debit}
            if workers == DEPLOYED_WORKERS:
                ways[SERVICE] = service_debit
            ways[name] = graphql_debit
            results = await alternating(
                ways,
                concurrency=CLIENTS,
                seconds=bench.seconds,
                warmup=bench.warmup,
                turns=TURNS,
                meter=meter,
                servers={name: server.pid},
            )
            measured[f"{RAW} ({name})"] = results.pop(RAW)
            measured |= results
            if workers == 1 and bench.py_spy is not None:
                profile_lines, profile_data = await _profile(bench, server.pid, graphql_debit)
    for what, result in measured.items():
        log(f"debits, {what}: {result.throughput:,.0f} ops/s, {result.summary()}")
    return ScenarioResult(
        name="debits",
        rows=_rows(measured),
        data={what: result.summary() for what, result in measured.items()}
        | {"profile": profile_data},
        notes=[_NOTE],
        profile=profile_lines,
    )


def _graphql_debit(api: GraphQL, users: list[str], tokens: dict[str, str]) -> Operation:
    keys = itertools.count()

    async def debit(worker: int) -> None:
        user = random.choice(users)
        variables = {
            "input": {"offerGroup": seed.GROUP, "tokens": 1, "idempotencyKey": f"g-{next(keys)}"}
        }
        await api.data(CONSUME, variables, token=tokens[user])

    return debit


def _rows(measured: dict[str, LoadResult]) -> list[Row]:
    raw = measured[f"{RAW} ({GRAPHQL})"]
    raw_one = measured[f"{RAW} ({ONE_WORKER})"]
    service, graphql, one = measured[SERVICE], measured[GRAPHQL], measured[ONE_WORKER]
    floor = raw.cost.per_operation(raw.operations)
    floor_one = raw_one.cost.per_operation(raw_one.operations)
    rows = [
        Row(f"debits: raw minimal `$inc` ({CLIENTS} tasks)", raw.throughput, "ops/s"),
        Row(
            f"debits: `services.wallets.consume` ({CLIENTS} tasks)",
            service.throughput,
            "ops/s",
            baseline=raw.throughput,
            baseline_label="raw",
            goal=Goal(GoalKind.RATIO_AT_LEAST, 0.7, ">= 0.7 of raw"),
            errors=service.errors,
        ),
        Row(
            f"debits: `consumeTokens` GraphQL over HTTP, {DEPLOYED_WORKERS} workers "
            f"({CLIENTS} clients, users at random)",
            graphql.throughput,
            "ops/s",
            baseline=raw.throughput,
            baseline_label="raw",
            goal=Goal(GoalKind.RATIO_AT_LEAST, 0.5, ">= 0.5 of raw"),
            errors=graphql.errors,
        ),
        Row(
            f"debits: `consumeTokens` GraphQL over HTTP, 1 worker ({CLIENTS} clients)",
            one.throughput,
            "ops/s",
            baseline=raw_one.throughput,
            baseline_label="raw",
            errors=one.errors,
        ),
    ]
    for label, result, base in (
        (f"GraphQL debit, {DEPLOYED_WORKERS} workers", graphql, floor),
        ("GraphQL debit, 1 worker", one, floor_one),
    ):
        cost = result.cost.per_operation(result.operations)
        if cost["database_cpu_ms"] is not None and base["database_cpu_ms"]:
            rows.append(
                Row(
                    f"debits: database CPU per {label}",
                    cost["database_cpu_ms"],
                    "ms",
                    baseline=base["database_cpu_ms"],
                    baseline_label="raw `$inc`",
                    goal=Goal(GoalKind.RATIO_AT_MOST, 2.0, "<= 2.0 of raw"),
                )
            )
        rows.append(
            Row(
                f"debits: server CPU per {label}",
                cost["server_cpu_ms"],
                "ms",
                goal=Goal(GoalKind.AT_MOST, 1.2, "<= 1.2 ms"),
            )
        )
    return rows


_NOTE = (
    f"**debits**: {CLIENTS} concurrent closed-loop clients, each debit of 1 token for one of "
    f"{WALLETS} funded users chosen at random, {OTHER_BALANCES:,} other balances in the "
    "collection. Raw: `update_one({_id, tokens: {$gte: 1}}, {$inc: {tokens: -1}})` on "
    f"{WALLETS + OTHER_BALANCES:,} minimal documents `{{_id, tokens}}` (only the `_id` "
    "index) in another database of the same server, from the bench process. Service: "
    "`services.wallets.consume` in the bench process. GraphQL: `consumeTokens` over HTTP to "
    f"`usercredits serve` in its own processes, with {DEPLOYED_WORKERS} workers (what serve "
    "picks taking payments on this machine) and with 1; each service runs alone, taking "
    f"{TURNS} turns with the raw baseline (and, for the first, the in-process service). CPU "
    "per operation: user + system time from /proc of the service's processes (supervisor "
    "and workers) and of the database, over the timed phases, divided by the operations; "
    "commands per operation from the database's serverStatus opcounters."
)


async def _profile(
    bench: Bench, pid: int, operation: Operation
) -> tuple[list[str], dict[str, Any]]:
    """A separate, unmeasured run of the GraphQL load with py-spy attached to the service."""
    assert bench.py_spy is not None
    output = bench.workdir / "profile-debits.txt"
    log("debits: profiling the service under the GraphQL load (py-spy)")
    recorder = profile.record(
        bench.py_spy, pid, bench.seconds, output, bench.workdir / "py-spy.log"
    )
    recording = asyncio.ensure_future(recorder)
    await closed_loop(operation, concurrency=CLIENTS, seconds=bench.seconds + 1.5, warmup=0)
    if not await recording:
        log(f"py-spy failed; see {bench.workdir / 'py-spy.log'}")
        return [], {}
    summary = profile.summarize(_read(output))
    lines = profile.markdown(
        summary,
        f"The service process (`usercredits serve`, 1 worker) during {bench.seconds:g} s of "
        f"`consumeTokens` over HTTP from {CLIENTS} clients",
    )
    return lines, summary.as_json()


def _read(path: Path) -> str:
    return path.read_text()
