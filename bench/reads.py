"""Scenario 2, reads: what does the `wallet` query cost on top of reading the document?

The same 32 concurrent clients (one user each) read their wallet through GraphQL over HTTP,
and, as the floor, a raw `find_one` of the same balance document from this process; the
two take turns while the service runs, so that a slow spell of the machine falls on both.
"""

from bench import seed
from bench.harness import Bench, BenchFailure, GraphQL, http_session, log, user_token
from bench.load import alternating
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.models import Balance
from usercredits.server.database import init_models

CLIENTS = 32
TOKENS = 1_000
TURNS = 5

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
    async with bench.service(database) as server, http_session(CLIENTS) as session:
        api = GraphQL(session, server.graphql_url)

        async def graphql_read(worker: int) -> None:
            data = await api.data(WALLET, token=tokens[worker])
            if data["wallet"]["balances"][0]["tokens"] != TOKENS:
                raise BenchFailure(f"unexpected wallet {data}")

        measured = await alternating(
            {"raw find_one": raw_read, "wallet query": graphql_read},
            concurrency=CLIENTS,
            seconds=bench.seconds,
            warmup=bench.warmup,
            turns=TURNS,
        )
    for what, result in measured.items():
        log(f"reads, {what}: {result.throughput:,.0f} ops/s, {result.errors} errors")
    raw, graphql = measured.values()

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
            goal=Goal(GoalKind.RATIO_AT_LEAST, 0.5, ">= 0.5 of raw"),
            errors=graphql.errors,
        ),
    ]
    notes = [
        f"**reads**: {CLIENTS} concurrent closed-loop clients, one user each. Raw: "
        "`find_one({user_id, offer_group})` on `wallet_balances` from the bench process. "
        "GraphQL: `query { wallet { balances { offerGroup tokens reserved expires } } }` with "
        "the user's JWT, over HTTP to the service process. The two take "
        f"{TURNS} turns each, in order, while the service runs.",
    ]
    return ScenarioResult(
        name="reads",
        rows=rows,
        data={"raw": raw.summary(), "graphql": graphql.summary()},
        notes=notes,
    )
