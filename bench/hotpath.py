"""Scenario: does every movement and read stay as fast as the data grows?

Each operation of the wallet's hot path is timed one at a time (no queueing), p50 over
`ROUNDS` runs, in a small state (1,000 balances, about 10,000 ledger rows) and a large
one (100,000 balances, 1,000,000 ledger rows), on the same database. A query that walks a
collection instead of using an index shows as a ratio far above 1. The expiry sweep is
timed per lapsed balance it handles. Last, a debit of a user whose group holds 1,000 live
lots against one whose group holds a single lot: reading, drawing and writing the lots
must not make a debit of a long-lived wallet slow.

Operations run in this process through the services (as a Python back end would use
them), against the same database the raw baselines use; the large state is seeded with
insert_many.
"""

import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import seed
from bench.harness import Bench, log
from bench.report import Goal, GoalKind, Row, ScenarioResult
from models import Cycle, LedgerEntry, OfferKind
from server.database import init_models
from services import Services, build_services
from services.clock import SystemClock
from services.money import Money
from services.offers import OfferSpec
from services.payments import SandboxPaymentClient

SMALL_BALANCES = 1_000
LARGE_BALANCES = 100_000
SMALL_LEDGER = 10_000
LARGE_LEDGER = 1_000_000
LAPSED = 100
"""Balances whose only lot has lapsed, swept in each state."""
MANY_LOTS = 1_000
ROUNDS = 150
WARMUP = 30
SETTLE_SECONDS = 20.0
"""After a bulk load the database flushes for a while; measuring then would charge the
large state for the load itself."""
NEAR_ONE = 1.5
LOTS_GOAL = 2.0
TOKENS = 1_000_000

Timed = Callable[[], Awaitable[Any]]


async def p50(operation: Timed, *, setup: Timed | None = None, after: Timed | None = None) -> float:
    """The median time of `operation` in milliseconds over ROUNDS runs, after WARMUP
    untimed ones; `setup` and `after` run untimed around each."""
    times = []
    for n in range(WARMUP + ROUNDS):
        if setup is not None:
            await setup()
        started = time.perf_counter()
        await operation()
        if n >= WARMUP:
            times.append((time.perf_counter() - started) * 1000)
        if after is not None:
            await after()
    return statistics.median(times)


async def run(bench: Bench) -> ScenarioResult:
    database = bench.database_name("hotpath")
    await init_models(bench.client, database)
    services = build_services(
        payments=SandboxPaymentClient(), clock=SystemClock(), default_currency="USD"
    )
    users = seed.users("hot", LARGE_BALANCES)
    await seed.wallets(bench.client, database, users[:SMALL_BALANCES], TOKENS, raw=False)
    await seed.ledger_entries(bench.client, database, users, SMALL_LEDGER - SMALL_BALANCES)
    offer = await services.offers.create_offer(
        spec=OfferSpec(
            name="Bench pack",
            kind=OfferKind.TOKENS,
            offer_group=seed.GROUP,
            token_count=10,
            prices=[Money(100, "USD")],
            cycle=Cycle.MONTHLY,
        )
    )
    await asyncio.sleep(SETTLE_SECONDS)
    small = await _measure(bench, services, database, users[:100], str(offer.id), "small")
    lots = await _lots(bench, services, database)

    log(f"hotpath: seeding {LARGE_BALANCES:,} balances and {LARGE_LEDGER:,} ledger rows")
    await seed.wallets(bench.client, database, users[SMALL_BALANCES:], TOKENS, raw=False)
    ledger = bench.client[database][LedgerEntry.Settings.name]
    missing = LARGE_LEDGER - await ledger.count_documents({})
    await seed.ledger_entries(bench.client, database, users, missing, first=SMALL_LEDGER)
    await asyncio.sleep(SETTLE_SECONDS)
    large = await _measure(bench, services, database, users[100:200], str(offer.id), "large")

    goal = Goal(GoalKind.RATIO_AT_MOST, NEAR_ONE, f"<= {NEAR_ONE}")
    rows = [
        Row(
            f"growth: {name} p50, {LARGE_BALANCES:,} vs {SMALL_BALANCES:,} balances "
            f"({LARGE_LEDGER // 1000:,} k vs {SMALL_LEDGER // 1000:,} k ledger rows)",
            large[name],
            "ms",
            baseline=small[name],
            baseline_label=f"{SMALL_BALANCES:,}",
            goal=goal,
        )
        for name in small
    ]
    rows.append(
        Row(
            f"lots: debit p50, {MANY_LOTS:,} live lots vs 1",
            lots["many"],
            "ms",
            baseline=lots["one"],
            baseline_label="1 lot",
            goal=Goal(GoalKind.RATIO_AT_MOST, LOTS_GOAL, f"<= {LOTS_GOAL}"),
        )
    )
    notes = [
        f"**growth**: each operation through the services in the bench process, one at a "
        f"time, p50 of {ROUNDS} runs after {WARMUP} untimed ones, each state measured "
        f"{SETTLE_SECONDS:g} s after its bulk load, first with {SMALL_BALANCES:,} balances and "
        f"{SMALL_LEDGER:,} ledger rows, then with {LARGE_BALANCES:,} balances and "
        f"{LARGE_LEDGER:,} ledger rows (seeded with insert_many). commit: of a reservation "
        "made (untimed) just before; order payment: `refresh_order` of an order whose "
        "sandbox payment has succeeded (credits its lot, marks it paid); wallet read: "
        "`balances(user)`; ledger page: 50 entries; expiry sweep: "
        f"`expire_lapsed_groups` over {LAPSED} lapsed balances, per balance. Goal: ratio <= "
        f"{NEAR_ONE}.",
        f"**lots**: a debit of 1 token from a group with {MANY_LOTS:,} live lots (each "
        "debit draws the first) against one with a single lot, p50.",
    ]
    return ScenarioResult(
        name="hotpath", rows=rows, data={"small": small, "large": large, "lots": lots}, notes=notes
    )


async def _measure(
    bench: Bench, services: Services, database: str, users: list[str], offer_id: str, state: str
) -> dict[str, float]:
    """Each operation on balances of its own (`users`, seeded with one lot each), so that
    one operation's lots and holds do not weigh on the next one's figures."""
    wallets, orders = services.wallets, services.orders
    sandbox = services.payments
    assert isinstance(sandbox, SandboxPaymentClient), "the bench pays in the sandbox"
    keys = itertools.count()
    debtor, reserver, committer = users[:3]
    granted = itertools.cycle(users[10:50])
    buyers = itertools.cycle(users[50:90])
    held: list[str] = []

    def reserve(user: str) -> Timed:
        async def hold() -> None:
            reservation = await wallets.reserve(
                user_id=user,
                offer_group=seed.GROUP,
                tokens=1,
                ttl_seconds=3600,
                idempotency_key=f"{state}-r-{next(keys)}",
            )
            held.append(str(reservation.id))

        return hold

    pending: list[str] = []

    async def order() -> None:
        created = await orders.create_order(user_id=next(buyers), offer_id=offer_id)
        assert created.order.payment_intent_id is not None
        sandbox.settle(created.order.payment_intent_id, succeed=True)
        pending.append(str(created.order.id))

    lapsed = seed.users(f"lapsed-{state}", LAPSED)
    expired = datetime.now(UTC) - timedelta(days=1)
    await seed.wallets(bench.client, database, lapsed, 10, raw=False, expires=expired)
    started = time.perf_counter()
    swept = await wallets.expire_lapsed_groups(now=datetime.now(UTC))
    sweep_ms = (time.perf_counter() - started) * 1000 / LAPSED
    if len(swept) != LAPSED:
        raise RuntimeError(f"the sweep expired {len(swept)} balances, not {LAPSED}")
    figures = {
        "debit": await p50(
            lambda: wallets.consume(
                user_id=debtor,
                offer_group=seed.GROUP,
                tokens=1,
                idempotency_key=f"{state}-c-{next(keys)}",
            )
        ),
        "reserve": await p50(
            reserve(reserver),
            after=lambda: wallets.release_reservation(reservation_id=held.pop()),
        ),
        "commit": await p50(
            lambda: wallets.commit_reservation(reservation_id=held.pop()),
            setup=reserve(committer),
        ),
        "grant": await p50(
            lambda: wallets.grant(
                user_id=next(granted),
                offer_group=seed.GROUP,
                tokens=1,
                idempotency_key=f"{state}-g-{next(keys)}",
            )
        ),
        "order payment": await p50(
            lambda: orders.refresh_order(order_id=pending.pop()), setup=order
        ),
        "wallet read": await p50(lambda: wallets.balances(user_id=debtor)),
        "ledger page": await p50(lambda: wallets.ledger(user_id=debtor, first=50)),
        "expiry sweep per lapsed balance": sweep_ms,
    }
    log(f"hotpath, {state}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in figures.items()))
    return figures


async def _lots(bench: Bench, services: Services, database: str) -> dict[str, float]:
    keys = itertools.count()
    figures = {}

    def debit(user: str) -> Timed:
        return lambda: services.wallets.consume(
            user_id=user, offer_group=seed.GROUP, tokens=1, idempotency_key=f"lots-{next(keys)}"
        )

    for name, count in (("one", 1), ("many", MANY_LOTS)):
        user = f"lots-{count}"
        await seed.wallets(bench.client, database, [user], TOKENS, lots=count, raw=False)
        figures[name] = await p50(debit(user))
    log(
        f"hotpath, lots: 1 lot {figures['one']:.2f} ms, {MANY_LOTS:,} lots {figures['many']:.2f} ms"
    )
    return figures
