"""Scenario: does every movement and read stay as fast as the data grows?

Two states on the same server, each in a database of its own, seeded with insert_many: a
small one (1,000 balances, 10,000 ledger rows) and a large one (100,000 balances,
1,000,000 ledger rows). Each operation of the wallet's hot path is timed one at a time
(no queueing) in both, the states taking turns: BLOCKS turns each of BLOCK_ROUNDS timed
runs after WARMUP untimed ones, p50 of all. Taking turns makes both states share the
server's slow spells (a checkpoint, the flushing that follows a bulk load) instead of
charging them to whichever state was measured then. A query that walks a collection
instead of using an index shows as a ratio far above 1. The expiry sweep is timed per
lapsed balance, over LAPSED balances that lapse afresh in each turn. Last, a debit of a
user whose group holds 1,000 live lots against one whose group holds a single lot, taking
turns in the same way.

Operations run in this process through the services (as a Python back end would use
them). The documents are bound to one database at a time (Beanie binds them for the
whole process), so each turn binds them to its state's database and builds the services
anew; the untimed runs at the start of a turn warm those up.
"""

import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import seed
from bench.harness import Bench, log
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.models import LedgerEntryDocument
from usercredits.server.database import init_models
from usercredits.services import Services, build_services
from usercredits.services.clock import SystemClock
from usercredits.services.payments import SandboxPaymentClient
from usercredits.values import Cycle, OfferKind, OfferSpec, Price

LAPSED = 20
"""Balances whose only lot has lapsed, swept in each turn."""
MANY_LOTS = 1_000
BLOCKS = 15
BLOCK_ROUNDS = 10
WARMUP = 3
SETTLE_SECONDS = 20.0
"""After a bulk load the database flushes for a while."""
NEAR_ONE = 1.5
LOTS_GOAL = 2.0
TOKENS = 1_000_000

Timed = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Timing:
    """What one turn times: `operation`, with `setup` and `after` untimed around each run."""

    operation: Timed
    setup: Timed | None = None
    after: Timed | None = None


Turn = Callable[[], Awaitable[Timing]]
"""Prepares a turn (untimed) and says what it times."""


async def taking_turns(
    turns: dict[str, Turn], *, rounds: int = BLOCK_ROUNDS, warmup: int = WARMUP
) -> dict[str, float]:
    """The median time in milliseconds of each side's operation, the sides taking BLOCKS
    turns each, in order; a turn times `rounds` runs after `warmup` untimed ones."""
    times: dict[str, list[float]] = {name: [] for name in turns}
    for _ in range(BLOCKS):
        for name, prepare in turns.items():
            timing = await prepare()
            for n in range(warmup + rounds):
                if timing.setup is not None:
                    await timing.setup()
                started = time.perf_counter()
                await timing.operation()
                if n >= warmup:
                    times[name].append((time.perf_counter() - started) * 1000)
                if timing.after is not None:
                    await timing.after()
    return {name: statistics.median(values) for name, values in times.items()}


@dataclass
class State:
    """One database of the comparison and what its operations keep between runs."""

    name: str
    database: str
    balances: int
    ledger: int
    payments: SandboxPaymentClient
    users: list[str] = field(default_factory=list)
    offer_id: str = ""
    keys: "itertools.count[int]" = field(default_factory=itertools.count)
    held: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def key(self, kind: str) -> str:
        return f"{self.name}-{kind}-{next(self.keys)}"


async def bind(bench: Bench, state: State) -> Services:
    """The services on `state`'s database."""
    await init_models(bench.client, state.database)
    return build_services(
        database=bench.client[state.database],
        payments=state.payments,
        clock=SystemClock(),
        default_currency="USD",
    )


async def run(bench: Bench) -> ScenarioResult:
    payments = SandboxPaymentClient()
    small = State("small", bench.database_name("hotpath_small"), 1_000, 10_000, payments)
    large = State("large", bench.database_name("hotpath_large"), 100_000, 1_000_000, payments)
    for state in (small, large):
        log(f"hotpath: seeding {state.balances:,} balances and {state.ledger:,} ledger rows")
        await _seed(bench, state)
    await asyncio.sleep(SETTLE_SECONDS)
    figures = await _growth(bench, small, large)
    lots = await _lots(bench, small)

    goal = Goal(GoalKind.RATIO_AT_MOST, NEAR_ONE, f"<= {NEAR_ONE}")
    rows = [
        Row(
            f"growth: {name} p50, {large.balances:,} vs {small.balances:,} balances "
            f"({large.ledger // 1000:,} k vs {small.ledger // 1000:,} k ledger rows)",
            figures["large"][name],
            "ms",
            baseline=figures["small"][name],
            baseline_label=f"{small.balances:,}",
            goal=goal,
        )
        for name in figures["small"]
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
        f"time, in two databases of the same server: {small.balances:,} balances and "
        f"{small.ledger:,} ledger rows, and {large.balances:,} balances and "
        f"{large.ledger:,} ledger rows (seeded with insert_many, measured from "
        f"{SETTLE_SECONDS:g} s after). The two take turns, {BLOCKS} each of {BLOCK_ROUNDS} "
        f"timed runs after {WARMUP} untimed ones, so that both see the server's slow "
        "spells; p50 of all runs. commit: of a reservation made (untimed) just before; "
        "order payment: `refresh_order` of an order whose sandbox payment has succeeded "
        "(credits its lot, marks it paid); wallet read: `balances(user)`; ledger page: 50 "
        f"entries; expiry sweep: `expire_lapsed_groups` over {LAPSED} balances lapsed "
        f"afresh in each turn, per balance. Goal: ratio <= {NEAR_ONE}.",
        f"**lots**: a debit of 1 token from a group with {MANY_LOTS:,} live lots (each "
        "debit draws the first) against one with a single lot, taking turns the same way; "
        "p50.",
    ]
    return ScenarioResult(name="hotpath", rows=rows, data=figures | {"lots": lots}, notes=notes)


async def _seed(bench: Bench, state: State) -> None:
    """The state's balances (one lot each), ledger rows up to its size, and an offer."""
    services = await bind(bench, state)
    state.users = seed.users(f"hot-{state.name}", state.balances)
    await seed.wallets(bench.client, state.database, state.users, TOKENS)
    ledger = bench.client[state.database][LedgerEntryDocument.Settings.name]
    rows = await ledger.count_documents({})
    await seed.ledger_entries(
        bench.client, state.database, state.users, state.ledger - rows, first=rows
    )
    offer = await services.offers.create_offer(
        spec=OfferSpec(
            name="Bench pack",
            kind=OfferKind.TOKENS,
            offer_group=seed.GROUP,
            token_count=10,
            prices=[Price(currency="USD", minor_units=100)],
            cycle=Cycle.MONTHLY,
        )
    )
    state.offer_id = str(offer.id)


Operation = Callable[[State, Services], Timing]
"""One hot-path operation on a state, timed on the services bound to it. Each operation
works on balances of its own, so one's lots and holds do not weigh on another's figures."""


def _debit(state: State, services: Services) -> Timing:
    return Timing(
        lambda: services.wallets.consume(
            user_id=state.users[0],
            offer_group=seed.GROUP,
            tokens=1,
            idempotency_key=state.key("c"),
        )
    )


def _holding(state: State, services: Services, user: str) -> Timed:
    async def hold() -> None:
        reservation = await services.wallets.reserve(
            user_id=user,
            offer_group=seed.GROUP,
            tokens=1,
            ttl_seconds=3600,
            idempotency_key=state.key("r"),
        )
        state.held.append(str(reservation.id))

    return hold


def _reserve(state: State, services: Services) -> Timing:
    return Timing(
        _holding(state, services, state.users[1]),
        after=lambda: services.wallets.release_reservation(reservation_id=state.held.pop()),
    )


def _commit(state: State, services: Services) -> Timing:
    return Timing(
        lambda: services.wallets.commit_reservation(reservation_id=state.held.pop()),
        setup=_holding(state, services, state.users[2]),
    )


def _grant(state: State, services: Services) -> Timing:
    granted = itertools.cycle(state.users[10:50])
    return Timing(
        lambda: services.wallets.grant(
            user_id=next(granted),
            offer_group=seed.GROUP,
            tokens=1,
            idempotency_key=state.key("g"),
        )
    )


def _order_payment(state: State, services: Services) -> Timing:
    buyers = itertools.cycle(state.users[50:90])

    async def order() -> None:
        created = await services.orders.create_order(user_id=next(buyers), offer_id=state.offer_id)
        assert created.order.payment_intent_id is not None
        state.payments.settle(created.order.payment_intent_id, succeed=True)
        state.pending.append(str(created.order.id))

    return Timing(lambda: services.orders.refresh_order(order_id=state.pending.pop()), setup=order)


def _wallet_read(state: State, services: Services) -> Timing:
    return Timing(lambda: services.wallets.balances(user_id=state.users[0]))


def _ledger_page(state: State, services: Services) -> Timing:
    return Timing(lambda: services.wallets.ledger(user_id=state.users[0], first=50))


OPERATIONS: dict[str, Operation] = {
    "debit": _debit,
    "reserve": _reserve,
    "commit": _commit,
    "grant": _grant,
    "order payment": _order_payment,
    "wallet read": _wallet_read,
    "ledger page": _ledger_page,
}


async def _growth(bench: Bench, small: State, large: State) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {small.name: {}, large.name: {}}

    def turn(state: State, operation: Operation) -> Turn:
        async def prepare() -> Timing:
            return operation(state, await bind(bench, state))

        return prepare

    for name, operation in OPERATIONS.items():
        p50s = await taking_turns({s.name: turn(s, operation) for s in (small, large)})
        for state_name, p50 in p50s.items():
            figures[state_name][name] = p50
        log(f"hotpath, {name}: small {p50s['small']:.2f} ms, large {p50s['large']:.2f} ms")

    def sweep_turn(state: State) -> Turn:
        async def prepare() -> Timing:
            services = await bind(bench, state)
            lapsed = seed.users(f"lapsed-{state.key('l')}", LAPSED)
            expired = datetime.now(UTC) - timedelta(days=1)
            await seed.wallets(bench.client, state.database, lapsed, 10, expires=expired)

            async def sweep() -> None:
                swept = await services.wallets.expire_lapsed_groups(now=datetime.now(UTC))
                if len(swept) != LAPSED:
                    raise RuntimeError(f"the sweep expired {len(swept)} balances, not {LAPSED}")

            return Timing(sweep)

        return prepare

    sweeps = await taking_turns({s.name: sweep_turn(s) for s in (small, large)}, rounds=1, warmup=0)
    for state_name, p50 in sweeps.items():
        figures[state_name]["expiry sweep per lapsed balance"] = p50 / LAPSED
    log(
        f"hotpath, sweep per balance: small {sweeps['small'] / LAPSED:.2f} ms, "
        f"large {sweeps['large'] / LAPSED:.2f} ms"
    )
    return figures


async def _lots(bench: Bench, state: State) -> dict[str, float]:
    def turn(user: str) -> Turn:
        async def prepare() -> Timing:
            services = await bind(bench, state)
            return Timing(
                lambda: services.wallets.consume(
                    user_id=user,
                    offer_group=seed.GROUP,
                    tokens=1,
                    idempotency_key=state.key("lots"),
                )
            )

        return prepare

    for count in (1, MANY_LOTS):
        await seed.wallets(bench.client, state.database, [f"lots-{count}"], TOKENS, lots=count)
    figures = await taking_turns({"one": turn("lots-1"), "many": turn(f"lots-{MANY_LOTS}")})
    log(
        f"hotpath, lots: 1 lot {figures['one']:.2f} ms, {MANY_LOTS:,} lots {figures['many']:.2f} ms"
    )
    return figures
