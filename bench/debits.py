"""Scenario 1, debit throughput: what does a debit cost on top of the database's floor?

Three ways of spending one token, each by 32 concurrent clients over 200 funded wallets
(each client its own wallets, so they measure the path and not contention on one
document), with 10,000 other balances in the collection, for the same bounded time:

- raw: the floor of the work, a conditional `$inc` on a wallet document by `_id` (PyMongo,
  in this process), in a copy of `wallet_balances` with the same documents and indexes;
- service: `services.wallets.consume` called in this process (read the balance, check the
  key against the ledger, one compare-and-set write, the ledger insert), no GraphQL;
- GraphQL: the `consumeTokens` mutation over HTTP to the service in its own process.

The three take turns while the service process runs, so that a slow spell of the machine
falls on all of them alike. Raw and service write to a second database seeded the same
way, which the service's change stream does not watch; the GraphQL run includes that
stream's cost, because the real service pays it on every debit.
"""

import asyncio
import itertools
from pathlib import Path
from typing import Any

from bench import profile, seed
from bench.harness import Bench, BenchFailure, GraphQL, http_session, log, user_token
from bench.load import Operation, alternating, closed_loop
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.models import balance_id
from usercredits.server.database import init_models
from usercredits.services import build_services
from usercredits.services.clock import SystemClock
from usercredits.services.payments import SandboxPaymentClient

CLIENTS = 32
WALLETS = 200
OTHER_BALANCES = 10_000
TOKENS = 1_000_000_000
TURNS = 5

CONSUME = (
    "mutation Consume($input: ConsumeTokensInput!) "
    "{ consumeTokens(input: $input) { balanceAfter } }"
)


async def run(bench: Bench) -> ScenarioResult:
    served = bench.database_name("debits")
    local = bench.database_name("debits-local")
    users = seed.users("debit", WALLETS)
    others = seed.users("other", OTHER_BALANCES)
    for database in (served, local):
        await init_models(bench.client, database)
        await seed.wallets(bench.client, database, users, TOKENS, raw=database == local)
        await seed.wallets(bench.client, database, others, 100, raw=database == local)
    keys = itertools.count()
    # Client w debits wallets w, w + 32, w + 64, ... in turn: no two clients share one.
    turns = [itertools.cycle(users[w::CLIENTS]) for w in range(CLIENTS)]

    raw_collection = bench.client[local][seed.RAW_BALANCES]

    async def raw_debit(worker: int) -> None:
        user = next(turns[worker])
        result = await raw_collection.update_one(
            {"_id": balance_id(user, seed.GROUP), "tokens": {"$gte": 1}},
            {"$inc": {"tokens": -1}},
        )
        if result.modified_count != 1:
            raise BenchFailure(f"the raw debit of {user} matched nothing")

    payments = SandboxPaymentClient()
    services = build_services(payments=payments, clock=SystemClock(), default_currency="USD")

    async def service_debit(worker: int) -> None:
        await services.wallets.consume(
            user_id=next(turns[worker]),
            offer_group=seed.GROUP,
            tokens=1,
            idempotency_key=f"service-{next(keys)}",
        )

    tokens = {u: user_token(u) for u in users}
    profile_lines: list[str] = []
    profile_data: dict[str, Any] = {}
    async with bench.service(served) as server, http_session(CLIENTS) as session:
        api = GraphQL(session, server.graphql_url)

        async def graphql_debit(worker: int) -> None:
            user = next(turns[worker])
            await api.data(
                CONSUME,
                {
                    "input": {
                        "offerGroup": seed.GROUP,
                        "tokens": 1,
                        "idempotencyKey": f"graphql-{next(keys)}",
                    }
                },
                token=tokens[user],
            )

        measured = await alternating(
            {
                "raw conditional $inc": raw_debit,
                "services.wallets.consume": service_debit,
                "consumeTokens over HTTP": graphql_debit,
            },
            concurrency=CLIENTS,
            seconds=bench.seconds,
            warmup=bench.warmup,
            turns=TURNS,
        )
        for what, result in measured.items():
            log(
                f"debits, {what}: {result.throughput:,.0f} ops/s, "
                f"{result.errors} errors {result.error_samples[:1]}"
            )
        if bench.py_spy is not None:
            profile_lines, profile_data = await _profile(bench, server.pid, graphql_debit)
    raw, service, graphql = measured.values()

    rows = [
        Row(
            f"debits: raw conditional `$inc` ({CLIENTS} tasks)",
            raw.throughput,
            "ops/s",
            errors=raw.errors,
        ),
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
            f"debits: `consumeTokens` GraphQL over HTTP ({CLIENTS} clients)",
            graphql.throughput,
            "ops/s",
            baseline=raw.throughput,
            baseline_label="raw",
            goal=Goal(GoalKind.RATIO_AT_LEAST, 0.5, ">= 0.5 of raw"),
            errors=graphql.errors,
        ),
    ]
    notes = [
        f"**debits**: {CLIENTS} concurrent closed-loop clients over {WALLETS} funded wallets "
        f"(each client its own), {OTHER_BALANCES:,} other balances in the collection, 1 "
        "token per debit. Raw: `update_one({_id, tokens: {$gte: 1}}, {$inc: {tokens: -1}})` "
        "on a copy of `wallet_balances` with its documents and indexes, from the bench "
        "process. Service: `services.wallets.consume` in the bench process (balance read, "
        "key check in the ledger, one compare-and-set write, ledger insert). GraphQL: "
        "`consumeTokens` over HTTP to `usercredits serve` in its own process (which also "
        "runs the change stream that turns each debit into a live event). The three take "
        f"{TURNS} turns each, in order, while the service runs; raw and service use a second "
        "database seeded the same way, outside the service's change stream.",
    ]
    return ScenarioResult(
        name="debits",
        rows=rows,
        data={
            "raw": raw.summary(),
            "service": service.summary(),
            "graphql": graphql.summary(),
            "profile": profile_data,
        },
        notes=notes,
        profile=profile_lines,
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
        f"The service process (`usercredits serve`) during {bench.seconds:g} s of "
        f"`consumeTokens` over HTTP from {CLIENTS} clients",
    )
    return lines, summary.as_json()


def _read(path: Path) -> str:
    return path.read_text()
