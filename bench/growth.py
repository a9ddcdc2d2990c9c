"""Scenario 4, growth: do debits and the offer list stay as fast when the data grows?

If every query the service makes is served by an index, a debit costs the same with 1 k or
200 k entries in the ledger, and `offers(offerGroup:)` costs the same with 10 or 10 k
offers in the catalogue (the group asked for always holds 10). A collection scan would show
as a ratio far above 1. Latency is measured one request at a time (no queueing), p50.

The 200 k entries are written with insert_many while no service runs (its change stream
would otherwise spend minutes publishing 200 k events nobody listens to); each
measurement gets a freshly started service, so both see the same warm-up.
"""

import itertools
from typing import Any

from bench import seed
from bench.harness import Bench, GraphQL, http_session, log, user_token
from bench.load import LoadResult, Operation, closed_loop
from bench.report import Goal, GoalKind, Row, ScenarioResult
from models import LedgerEntry, Offer
from server.database import init_models

USERS = 1_000
SMALL_LEDGER = 1_000
LARGE_LEDGER = 200_000
SMALL_CATALOGUE = 10
LARGE_CATALOGUE = 10_000
OFFERS_PER_GROUP = 10
TOKENS = 1_000_000
NEAR_ONE = 1.5

CONSUME = (
    "mutation Consume($input: ConsumeTokensInput!) "
    "{ consumeTokens(input: $input) { balanceAfter } }"
)
OFFERS = (
    "query Offers($group: String) "
    "{ offers(offerGroup: $group) { id name tokenCount prices { amount currency } } }"
)


async def run(bench: Bench) -> ScenarioResult:
    database = bench.database_name("growth")
    await init_models(bench.client, database)
    users = seed.users("grow", USERS)
    await seed.wallets(bench.client, database, users, TOKENS)  # one grant entry each
    await seed.offers(bench.client, database, [seed.GROUP] * SMALL_CATALOGUE)
    ledger = bench.client[database][LedgerEntry.Settings.name]
    catalogue = bench.client[database][Offer.Settings.name]
    keys = itertools.count()
    prober = users[0]
    token = user_token(prober)

    async def measure(what: str) -> tuple[LoadResult, LoadResult, int, int]:
        """Debit and offers latency with a freshly started service."""
        entries = await ledger.count_documents({})
        offers = await catalogue.count_documents({})
        async with bench.service(database) as server, http_session(1) as session:
            api = GraphQL(session, server.graphql_url)

            async def debit(worker: int) -> None:
                await api.data(
                    CONSUME,
                    {
                        "input": {
                            "offerGroup": seed.GROUP,
                            "tokens": 1,
                            "idempotencyKey": f"growth-{next(keys)}",
                        }
                    },
                    token=token,
                )

            async def list_offers(worker: int) -> None:
                data = await api.data(OFFERS, {"group": seed.GROUP}, token=token)
                if len(data["offers"]) != OFFERS_PER_GROUP:
                    raise ValueError(f"expected {OFFERS_PER_GROUP} offers, got {data}")

            debits = await _sequential(bench, debit)
            listing = await _sequential(bench, list_offers)
        log(
            f"growth, {what}: {entries:,} ledger entries, debit p50 "
            f"{debits.summary()['p50_ms']:.1f} ms; {offers:,} offers, offers p50 "
            f"{listing.summary()['p50_ms']:.1f} ms"
        )
        return debits, listing, entries, offers

    small_debits, small_offers, small_entries, small_catalogue = await measure("small")

    log(f"growth: writing {LARGE_LEDGER - small_entries:,} ledger entries and offers")
    await seed.ledger_entries(bench.client, database, users, LARGE_LEDGER - small_entries)
    other_groups = [
        f"other-{i // OFFERS_PER_GROUP:04d}" for i in range(LARGE_CATALOGUE - SMALL_CATALOGUE)
    ]
    await seed.offers(bench.client, database, other_groups)

    large_debits, large_offers, large_entries, large_catalogue = await measure("large")

    def p50(result: LoadResult) -> float:
        value: float = result.summary()["p50_ms"]
        return value

    goal = Goal(GoalKind.RATIO_AT_MOST, NEAR_ONE, f"<= {NEAR_ONE} (near 1)")
    rows = [
        Row(
            f"growth: `consumeTokens` p50 latency, {large_entries:,} vs {small_entries:,} "
            "ledger entries",
            p50(large_debits),
            "ms",
            baseline=p50(small_debits),
            baseline_label=f"{small_entries:,}",
            goal=goal,
            errors=small_debits.errors + large_debits.errors,
        ),
        Row(
            f"growth: `offers(offerGroup:)` p50 latency, {large_catalogue:,} vs "
            f"{small_catalogue:,} offers",
            p50(large_offers),
            "ms",
            baseline=p50(small_offers),
            baseline_label=f"{small_catalogue:,}",
            goal=goal,
            errors=small_offers.errors + large_offers.errors,
        ),
    ]
    notes = [
        f"**growth**: one client, one request at a time, p50 over {bench.seconds:g} s, each "
        "state on a freshly started service. Ledger: the debiting user's own history is "
        f"small; the collection holds {small_entries:,} then {large_entries:,} entries "
        f"of {USERS:,} users (seeded with insert_many). Offers: `offers(offerGroup:)` "
        f"returns the same {OFFERS_PER_GROUP} offers from a catalogue of {small_catalogue:,} "
        f"then {large_catalogue:,} offers ({OFFERS_PER_GROUP} per group). Goal: ratio <= "
        f"{NEAR_ONE}, i.e. near 1 (an index lookup, not a scan).",
    ]
    data: dict[str, Any] = {
        "ledger": {
            "small": {"entries": small_entries, **small_debits.summary()},
            "large": {"entries": large_entries, **large_debits.summary()},
        },
        "offers": {
            "small": {"offers": small_catalogue, **small_offers.summary()},
            "large": {"offers": large_catalogue, **large_offers.summary()},
        },
    }
    return ScenarioResult(name="growth", rows=rows, data=data, notes=notes)


async def _sequential(bench: Bench, operation: Operation) -> LoadResult:
    return await closed_loop(operation, concurrency=1, seconds=bench.seconds, warmup=bench.warmup)
