"""A property test: random batches of every movement (credits, grants with priorities,
debits with replayed keys, reservations, commits, releases, refunds, time passing, sweeps)
run concurrently through two independent movers, as two processes would. After each batch
every lot is whole, the ledger adds up to the balance, and tokens are conserved."""

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import FakeClock, assert_invariant, order_credit
from usercredits.models import ALL_DOCUMENTS, LedgerEntryDocument
from usercredits.services import Services
from usercredits.services.errors import Conflict, Expired, InsufficientTokens, NotFound
from usercredits.services.expiry import expire_due
from usercredits.services.movements import Movements
from usercredits.services.orders import Orders
from usercredits.services.wallets import Wallets
from usercredits.values import LedgerEntry

movement = st.one_of(
    st.tuples(st.just("grant"), st.integers(1, 20), st.integers(0, 100)),
    st.tuples(st.just("consume"), st.integers(1, 15), st.integers(0, 5)),
    st.tuples(st.just("reserve"), st.integers(1, 10), st.integers(1, 120)),
    st.tuples(st.just("commit"), st.integers(0, 10), st.integers(0, 4)),
    st.tuples(st.just("release"), st.integers(0, 10), st.integers(0, 4)),
    st.tuples(st.just("refund"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("advance"), st.integers(1, 200), st.just(0)),
    st.tuples(st.just("sweep"), st.just(0), st.just(0)),
)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches=st.lists(st.lists(movement, min_size=1, max_size=6), min_size=1, max_size=6))
async def test_random_concurrent_movements_keep_every_lot_and_the_ledger_whole(
    services: Services, clock: FakeClock, batches: list[list[tuple[str, int, int]]]
) -> None:
    for document in ALL_DOCUMENTS:
        await document.get_pymongo_collection().delete_many({})
    movers = [services.wallets, Wallets(movements=Movements(clock=clock), clock=clock)]
    reservations: list[str] = []
    credited: list[str] = []

    async def run(i: int, name: str, amount: int, extra: int) -> None:
        wallets = movers[i % 2]
        if name == "grant" and extra % 2:
            order_id = f"o{i}"
            credited.append(order_id)
            await wallets.credit(order_credit(clock, order_id, amount, 1 + extra % 3))
        elif name == "grant":
            await wallets.grant(
                user_id="u1",
                offer_group="pro",
                tokens=amount,
                idempotency_key=f"g{i}",
                priority=extra,
            )
        elif name == "consume":
            await wallets.consume(
                user_id="u1", offer_group="pro", tokens=amount, idempotency_key=f"c{i - extra}"
            )
        elif name == "reserve":
            held = await wallets.reserve(
                user_id="u1",
                offer_group="pro",
                tokens=amount,
                ttl_seconds=extra,
                idempotency_key=f"r{i}",
            )
            reservations.append(str(held.id))
        elif name in ("commit", "release") and reservations:
            rid = reservations[extra % len(reservations)]
            if name == "commit":
                held_tokens = (await wallets.reservation(reservation_id=rid)).tokens
                await wallets.commit_reservation(
                    reservation_id=rid, tokens=min(amount or 1, held_tokens)
                )
            else:
                await wallets.release_reservation(reservation_id=rid)
        elif name == "refund" and credited:
            await wallets.take_back(
                user_id="u1",
                offer_group="pro",
                tokens=0,
                order_id=credited[amount % len(credited)],
            )
        elif name == "advance":
            clock.advance(days=amount / 100)
        elif name == "sweep":
            await wallets.release_expired_reservations(now=clock.now())
            await wallets.expire_lapsed_groups(now=clock.now())

    async def attempt(i: int, step: tuple[str, int, int]) -> None:
        with contextlib.suppress(InsufficientTokens, Expired, NotFound, Conflict):
            await run(i, *step)

    index = 0
    for batch in batches:
        await asyncio.gather(*(attempt(index + n, step) for n, step in enumerate(batch)))
        index += len(batch)
        if await services.wallets.balance(user_id="u1", offer_group="pro") is not None:
            balance = await assert_invariant("u1", "pro")
            entries = await LedgerEntryDocument.find({"user_id": "u1"}).to_list()
            added = sum(e.tokens for e in entries if e.reason.value in ("grant", "purchase"))
            gone = -sum(
                e.tokens for e in entries if e.reason.value in ("consumption", "expiry", "refund")
            )
            assert added - gone == balance.tokens + balance.reserved, "tokens are conserved"


step = st.one_of(
    st.tuples(st.just("grant"), st.integers(1, 20), st.sampled_from([0, 1, 3, 30])),
    st.tuples(st.just("consume"), st.integers(1, 15), st.just(0)),
    st.tuples(st.just("reserve"), st.integers(1, 10), st.integers(30, 7 * 86400)),
    st.tuples(st.just("commit"), st.integers(0, 10), st.integers(0, 4)),
    st.tuples(st.just("release"), st.just(0), st.integers(0, 4)),
    st.tuples(st.just("advance"), st.integers(1, 300), st.just(0)),
    st.tuples(st.just("sweep"), st.just(0), st.just(0)),
)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(step, min_size=1, max_size=20))
async def test_after_every_step_the_ledger_explains_the_read_balance_in_commit_order(
    services: Services, clock: FakeClock, steps: list[tuple[str, int, int]]
) -> None:
    """Debits, grants (some expiring), reservations, commits, releases, time passing and
    sweeps in a random order, through two movers as two processes would. After every step,
    without waiting for a sweep: the ledger read page by page lists each entry once, newest
    first in the order they committed, running to the balance read; and the change stream
    (what live events are made from) carried each entry once."""
    for document in ALL_DOCUMENTS:
        await document.get_pymongo_collection().delete_many({})
    ledger = LedgerEntryDocument.get_pymongo_collection()
    movers = [services.wallets, Wallets(movements=Movements(clock=clock), clock=clock)]
    reservations: list[str] = []
    seen: Counter[str] = Counter()
    async with await ledger.watch([{"$match": {"operationType": "insert"}}]) as stream:
        for i, (name, amount, extra) in enumerate(steps):
            wallets = movers[i % 2]
            with contextlib.suppress(InsufficientTokens, Expired, NotFound, Conflict):
                await take_step(
                    wallets, services.orders, clock, reservations, (i, name, amount, extra)
                )
            view = await services.wallets.balance(user_id="u1", offer_group="pro")
            pages = await read_in_pages(services.wallets)
            assert len({e.id for e in pages}) == len(pages), "an entry listed twice"
            assert [e.seq for e in pages] == sorted((e.seq for e in pages), reverse=True)
            assert [e.seq for e in pages] == list(range(len(pages), 0, -1))
            running = 0
            for entry in reversed(pages):
                running += entry.released + entry.tokens
                assert entry.balance_after == running
            assert running == (view.tokens if view else 0), "the ledger explains the read"
            async with asyncio.timeout(10):
                while sum(seen.values()) < len(pages):
                    change = await stream.try_next()
                    if change is not None:
                        seen[str(change["fullDocument"]["_id"])] += 1
            assert seen == Counter(str(e.id) for e in pages), "one event per entry"


async def take_step(
    wallets: Wallets,
    orders: Orders,
    clock: FakeClock,
    reservations: list[str],
    step: tuple[int, str, int, int],
) -> None:
    i, name, amount, extra = step
    if name == "grant":
        await wallets.grant(
            user_id="u1",
            offer_group="pro",
            tokens=amount,
            idempotency_key=f"g{i}",
            expires=clock.now() + timedelta(days=extra) if extra else None,
        )
    elif name == "consume":
        await wallets.consume(
            user_id="u1", offer_group="pro", tokens=amount, idempotency_key=f"c{i}"
        )
    elif name == "reserve":
        held = await wallets.reserve(
            user_id="u1",
            offer_group="pro",
            tokens=amount,
            ttl_seconds=extra,
            idempotency_key=f"r{i}",
        )
        reservations.append(str(held.id))
    elif name in ("commit", "release") and reservations:
        rid = reservations[extra % len(reservations)]
        if name == "commit":
            held_tokens = (await wallets.reservation(reservation_id=rid)).tokens
            await wallets.commit_reservation(
                reservation_id=rid, tokens=min(amount or 1, held_tokens)
            )
        else:
            await wallets.release_reservation(reservation_id=rid)
    elif name == "advance":
        clock.advance(hours=amount)
    elif name == "sweep":
        await expire_due(wallets=wallets, orders=orders, now=clock.now())


async def read_in_pages(wallets: Wallets) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    after = None
    while True:
        page = await wallets.ledger(user_id="u1", offer_group="pro", first=3, after=after)
        entries += page.entries
        if not page.has_next_page:
            return entries
        after = str(page.entries[-1].id)
