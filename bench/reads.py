"""Scenario 2, reads: what do a request, and the `wallet` query, cost on top of the floor?

32 concurrent clients, each request for one of 200 users chosen at random: the `wallet`
query over HTTP, `{ __typename }` over HTTP (what every request pays before any work),
and, as the floor, a raw `find_one` by `_id` of a minimal document `{_id, tokens}` (only
the `_id` index) in another database of the same server. The service runs at the worker
count `serve` picks for a deployment taking payments (one per core), then with one worker,
each alone with the raw baseline, taking turns with it. Beside each throughput: server and
database CPU per operation (bench/cost.py).
"""

import random

from bench import seed
from bench.cost import Meter
from bench.debits import DEPLOYED_WORKERS
from bench.harness import Bench, BenchFailure, GraphQL, http_session, log, user_token
from bench.load import LoadResult, Operation, alternating
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.server.database import init_models

CLIENTS = 32
USERS = 200
TOKENS = 1_000
TURNS = 5

WALLET = "query Wallet { wallet { balances { offerGroup tokens reserved expires } } }"
RAW = "raw find_one"


async def run(bench: Bench) -> ScenarioResult:
    database = bench.database_name("reads")
    floor = bench.database_name("reads-minimal")
    await init_models(bench.client, database)
    users = seed.users("reader", USERS)
    await seed.wallets(bench.client, database, users, TOKENS)
    await seed.minimal(bench.client, floor, USERS, TOKENS)
    minimal = bench.client[floor][seed.MINIMAL]

    async def raw_read(worker: int) -> None:
        n = random.randrange(USERS)
        if await minimal.find_one({"_id": n}) is None:
            raise BenchFailure(f"no document {n}")

    tokens = [user_token(u) for u in users]
    meter = await Meter.of(bench.client)
    measured: dict[str, LoadResult] = {}
    for workers in (DEPLOYED_WORKERS, 1):
        async with (
            bench.service(database, workers=workers) as server,
            http_session(CLIENTS) as session,
        ):
            wallet, typename = _requests(GraphQL(session, server.graphql_url), tokens)
            ways: dict[str, Operation] = {
                RAW: raw_read,
                f"wallet, {workers} workers": wallet,
                f"__typename, {workers} workers": typename,
            }
            results = await alternating(
                ways,
                concurrency=CLIENTS,
                seconds=bench.seconds,
                warmup=bench.warmup,
                turns=TURNS,
                meter=meter,
                servers={name: server.pid for name in ways if name != RAW},
            )
            measured[f"{RAW} ({workers} workers)"] = results.pop(RAW)
            measured |= results
    for what, result in measured.items():
        log(f"reads, {what}: {result.throughput:,.0f} ops/s, {result.summary()}")
    return ScenarioResult(
        name="reads",
        rows=_rows(measured),
        data={what: result.summary() for what, result in measured.items()},
        notes=[_NOTE],
    )


def _requests(api: GraphQL, tokens: list[str]) -> tuple[Operation, Operation]:
    """A `wallet` read and a `{ __typename }`, each as a random user."""

    async def wallet(worker: int) -> None:
        data = await api.data(WALLET, token=random.choice(tokens))
        if data["wallet"]["balances"][0]["tokens"] != TOKENS:
            raise BenchFailure(f"unexpected wallet {data}")

    async def typename(worker: int) -> None:
        await api.data("{ __typename }", token=random.choice(tokens))

    return wallet, typename


def _rows(measured: dict[str, LoadResult]) -> list[Row]:
    rows = []
    for workers in (DEPLOYED_WORKERS, 1):
        raw = measured[f"{RAW} ({workers} workers)"]
        wallet = measured[f"wallet, {workers} workers"]
        typename = measured[f"__typename, {workers} workers"]
        deployed = workers == DEPLOYED_WORKERS
        rows += [
            Row(
                f"reads: raw minimal `find_one` by `_id` ({CLIENTS} tasks)", raw.throughput, "ops/s"
            ),
            Row(
                f"reads: `wallet` query, GraphQL over HTTP, {workers} worker"
                f"{'s' if workers > 1 else ''} ({CLIENTS} clients, users at random)",
                wallet.throughput,
                "ops/s",
                baseline=raw.throughput,
                baseline_label="raw",
                goal=Goal(GoalKind.RATIO_AT_LEAST, 0.6, ">= 0.6 of raw") if deployed else None,
                errors=wallet.errors,
            ),
        ]
        for label, result, most in (
            ("`wallet` read", wallet, 1.0),
            ("`{ __typename }`", typename, 0.5),
        ):
            cost = result.cost.per_operation(result.operations)
            rows.append(
                Row(
                    f"reads: server CPU per {label}, {workers} worker{'s' if workers > 1 else ''}",
                    cost["server_cpu_ms"],
                    "ms",
                    goal=Goal(GoalKind.AT_MOST, most, f"<= {most} ms") if deployed else None,
                )
            )
        floor = raw.cost.per_operation(raw.operations)["database_cpu_ms"]
        read = wallet.cost.per_operation(wallet.operations)["database_cpu_ms"]
        if floor and read is not None:
            rows.append(
                Row(
                    f"reads: database CPU per `wallet` read, {workers} worker"
                    f"{'s' if workers > 1 else ''}",
                    read,
                    "ms",
                    baseline=floor,
                    baseline_label="raw `find_one`",
                )
            )
    return rows


_NOTE = (
    f"**reads**: {CLIENTS} concurrent closed-loop clients, each request for one of {USERS} "
    "users chosen at random. Raw: `find_one({_id})` of a minimal document `{_id, tokens}` "
    "(only the `_id` index) in another database of the same server, from the bench "
    "process. GraphQL: `query { wallet { balances { offerGroup tokens reserved expires } } }` "
    "and `{ __typename }` with the user's JWT, over HTTP to the service, with "
    f"{DEPLOYED_WORKERS} workers and then with 1, each alone with the raw baseline, taking "
    f"{TURNS} turns. CPU per operation as for **debits**."
)
