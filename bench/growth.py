"""Scenario 4, growth of the catalogue: does the offer list stay as fast when it grows?

If every query the service makes is served by an index, `offers(offerGroup:)` costs the
same with 10 or 10 k offers in the catalogue (the group asked for always holds 10). A
collection scan would show as a ratio far above 1. Latency is measured one request at a
time (no queueing), p50, over HTTP; each measurement gets a freshly started service, so
both see the same warm-up. The wallet's hot path grows in bench/hotpath.py.
"""

from typing import Any

from bench import seed
from bench.harness import Bench, GraphQL, http_session, log, user_token
from bench.load import LoadResult, Operation, closed_loop
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.models import OfferDocument
from usercredits.server.database import init_models

SMALL_CATALOGUE = 10
LARGE_CATALOGUE = 10_000
OFFERS_PER_GROUP = 10
NEAR_ONE = 1.5

OFFERS = (
    "query Offers($group: String) "
    "{ offers(offerGroup: $group) { id name tokenCount prices { amount currency } } }"
)


async def run(bench: Bench) -> ScenarioResult:
    database = bench.database_name("growth")
    await init_models(bench.client, database)
    await seed.offers(bench.client, database, [seed.GROUP] * SMALL_CATALOGUE)
    catalogue = bench.client[database][OfferDocument.Settings.name]
    token = user_token("grow-00000")

    async def measure(what: str) -> tuple[LoadResult, int]:
        """The offers query's latency with a freshly started service."""
        offers = await catalogue.count_documents({})
        async with bench.service(database) as server, http_session(1) as session:
            api = GraphQL(session, server.graphql_url)

            async def list_offers(worker: int) -> None:
                data = await api.data(OFFERS, {"group": seed.GROUP}, token=token)
                if len(data["offers"]) != OFFERS_PER_GROUP:
                    raise ValueError(f"expected {OFFERS_PER_GROUP} offers, got {data}")

            listing = await _sequential(bench, list_offers)
        log(f"growth, {what}: {offers:,} offers, p50 {listing.summary()['p50_ms']:.1f} ms")
        return listing, offers

    small_offers, small_catalogue = await measure("small")
    other_groups = [
        f"other-{i // OFFERS_PER_GROUP:04d}" for i in range(LARGE_CATALOGUE - SMALL_CATALOGUE)
    ]
    await seed.offers(bench.client, database, other_groups)
    large_offers, large_catalogue = await measure("large")

    def p50(result: LoadResult) -> float:
        value: float = result.summary()["p50_ms"]
        return value

    rows = [
        Row(
            f"growth: `offers(offerGroup:)` p50 latency, {large_catalogue:,} vs "
            f"{small_catalogue:,} offers",
            p50(large_offers),
            "ms",
            baseline=p50(small_offers),
            baseline_label=f"{small_catalogue:,}",
            goal=Goal(GoalKind.RATIO_AT_MOST, NEAR_ONE, f"<= {NEAR_ONE} (near 1)"),
            errors=small_offers.errors + large_offers.errors,
        ),
    ]
    notes = [
        f"**growth (offers)**: one client, one request at a time, p50 over {bench.seconds:g} "
        f"s, each state on a freshly started service. `offers(offerGroup:)` returns the same "
        f"{OFFERS_PER_GROUP} offers from a catalogue of {small_catalogue:,} then "
        f"{large_catalogue:,} offers ({OFFERS_PER_GROUP} per group). Goal: ratio <= "
        f"{NEAR_ONE}, i.e. near 1 (an index lookup, not a scan).",
    ]
    data: dict[str, Any] = {
        "offers": {
            "small": {"offers": small_catalogue, **small_offers.summary()},
            "large": {"offers": large_catalogue, **large_offers.summary()},
        },
    }
    return ScenarioResult(name="growth", rows=rows, data=data, notes=notes)


async def _sequential(bench: Bench, operation: Operation) -> LoadResult:
    return await closed_loop(operation, concurrency=1, seconds=bench.seconds, warmup=bench.warmup)
