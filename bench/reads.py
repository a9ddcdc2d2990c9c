"""Scenario 2, reads: what does the `wallet` query cost on top of reading the document?

The same 32 concurrent clients (one user each) read their wallet through GraphQL over HTTP,
and, as the floor, a raw `find_one` of the same balance document from this process; and the
same query to a service with two worker processes. They take turns while both services
run, so that a slow spell of the machine falls on all of them alike.
"""

from bench import seed
from bench.harness import Bench, BenchFailure, GraphQL, http_session, log, user_token
from bench.load import Operation, alternating
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.models import Balance
from usercredits.server.database import init_models

CLIENTS = 32
TOKENS = 1_000
TURNS = 5
WORKERS = 2

WALLET = "query Wallet { wallet { balances { offerGroup tokens reserved expires } } }"


async def run(bench: Bench) -> ScenarioResult:
    database = bench.database_name("reads")
    await init_models(bench.client, database)
    users = seed.users("reader", CLIENTS)
    await seed.wallets(bench.client, database, users, TOKENS)
    balances = bench.client[database][Balance.Settings.name]

    async def raw_read(worker: int) -> None:
        found = await balances.find_one({"user_id": users[worker], "offer_group": seed.GROUP})
        if found is None:
            raise BenchFailure(f"no balance for {users[worker]}")

    tokens = [user_token(u) for u in users]
    async with (
        bench.service(database) as one,
        bench.service(database, workers=WORKERS) as several,
        http_session(CLIENTS) as session,
    ):

        def graphql_read(url: str) -> Operation:
            api = GraphQL(session, url)

            async def read(worker: int) -> None:
                data = await api.data(WALLET, token=tokens[worker])
                if data["wallet"]["balances"][0]["tokens"] != TOKENS:
                    raise BenchFailure(f"unexpected wallet {data}")

            return read

        measured = await alternating(
            {
                "raw find_one": raw_read,
                "wallet query": graphql_read(one.graphql_url),
                f"wallet query, {WORKERS} workers": graphql_read(several.graphql_url),
            },
            concurrency=CLIENTS,
            seconds=bench.seconds,
            warmup=bench.warmup,
            turns=TURNS,
        )
    for what, result in measured.items():
        log(f"reads, {what}: {result.throughput:,.0f} ops/s, {result.errors} errors")
    raw, graphql, workers = measured.values()

    rows = [
        Row(
            f"reads: raw `find_one` of the balance ({CLIENTS} tasks)",
            raw.throughput,
            "ops/s",
            errors=raw.errors,
        ),
        Row(
            f"reads: `wallet` query, GraphQL over HTTP ({CLIENTS} clients)",
            graphql.throughput,
            "ops/s",
            baseline=raw.throughput,
            baseline_label="raw",
            goal=Goal(GoalKind.RATIO_AT_LEAST, 0.6, ">= 0.6 of raw"),
            errors=graphql.errors,
        ),
        Row(
            f"reads: `wallet` query, GraphQL over HTTP, `--workers {WORKERS}` ({CLIENTS} clients)",
            workers.throughput,
            "ops/s",
            baseline=raw.throughput,
            baseline_label="raw",
            errors=workers.errors,
        ),
    ]
    notes = [
        f"**reads**: {CLIENTS} concurrent closed-loop clients, one user each. Raw: "
        "`find_one({user_id, offer_group})` on `wallet_balances` from the bench process. "
        "GraphQL: `query { wallet { balances { offerGroup tokens reserved expires } } }` with "
        "the user's JWT, over HTTP to the service process (one worker), and to a second "
        f"service with `--workers {WORKERS}` on the same database. The three take {TURNS} "
        "turns each, in order, while both services run.",
    ]
    return ScenarioResult(
        name="reads",
        rows=rows,
        data={"raw": raw.summary(), "graphql": graphql.summary(), "workers": workers.summary()},
        notes=notes,
    )
