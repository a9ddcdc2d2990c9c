"""Property tests: random runs of every movement (credits, grants with priorities, debits
with replayed keys, reservations, commits, releases, refunds, time passing, sweeps) through
two independent movers, as two processes would. Run in concurrent batches: after each batch
every lot is whole, the ledger adds up to the balance, and tokens are conserved. Run one
at a time: after every step the ledger, read page by page, is in commit order and runs to
the balance read (sweep or not), and each entry reached the change stream once."""

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import FakeClock, assert_invariant, order_credit, other_wallets
from usercredits.models import ALL_DOCUMENTS, LedgerEntryDocument
from usercredits.models.collections import Collections
from usercredits.services import Services
from usercredits.services.errors import Conflict, Expired, InsufficientTokens, NotFound
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


@dataclass
class Made:
    """What the steps made so far, for later steps to name."""

    reservations: list[str] = field(default_factory=list)
    credited: list[str] = field(default_factory=list)


async def take_step(
    wallets: Wallets, clock: FakeClock, made: Made, i: int, step: tuple[str, int, int]
) -> None:
    """Step `i` of a random run: a movement, time passing or a sweep. A refusal is an
    answer, not a failure."""
    name, amount, extra = step
    with contextlib.suppress(InsufficientTokens, Expired, NotFound, Conflict):
        if name == "grant" and extra % 2:
            order_id = f"o{i}"
            made.credited.append(order_id)
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
            made.reservations.append(str(held.id))
        elif name in ("commit", "release") and made.reservations:
            rid = made.reservations[extra % len(made.reservations)]
            if name == "commit":
                held_tokens = (await wallets.reservation(reservation_id=rid)).tokens
                await wallets.commit_reservation(
                    reservation_id=rid, tokens=min(amount or 1, held_tokens)
                )
            else:
                await wallets.release_reservation(reservation_id=rid)
        elif name == "refund" and made.credited:
            await wallets.take_back(
                user_id="u1",
                offer_group="pro",
                tokens=0,
                order_id=made.credited[amount % len(made.credited)],
            )
        elif name == "advance":
            clock.advance(days=amount / 100)
        elif name == "sweep":
            await wallets.release_expired_reservations(now=clock.now())
            await wallets.expire_lapsed_groups(now=clock.now())


async def empty_database() -> None:
    for document in ALL_DOCUMENTS:
        await document.get_pymongo_collection().delete_many({})


def two_movers(services: Services, clock: FakeClock, collections: Collections) -> list[Wallets]:
    """The services' wallets and a second, independent mover, as two processes would have."""
    return [services.wallets, other_wallets(collections, clock)]


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches=st.lists(st.lists(movement, min_size=1, max_size=6), min_size=1, max_size=6))
async def test_random_concurrent_movements_keep_every_lot_and_the_ledger_whole(
    services: Services,
    clock: FakeClock,
    collections: Collections,
    batches: list[list[tuple[str, int, int]]],
) -> None:
    await empty_database()
    movers = two_movers(services, clock, collections)
    made = Made()
    index = 0
    for batch in batches:
        await asyncio.gather(
            *(
                take_step(movers[(index + n) % 2], clock, made, index + n, step)
                for n, step in enumerate(batch)
            )
        )
        index += len(batch)
        if await services.wallets.balance(user_id="u1", offer_group="pro") is not None:
            balance = await assert_invariant("u1", "pro")
            entries = await LedgerEntryDocument.find({"user_id": "u1"}).to_list()
            added = sum(e.tokens for e in entries if e.reason.value in ("grant", "purchase"))
            gone = -sum(
                e.tokens for e in entries if e.reason.value in ("consumption", "expiry", "refund")
            )
            assert added - gone == balance.tokens + balance.reserved, "tokens are conserved"


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(movement, min_size=1, max_size=24))
async def test_after_every_step_the_ledger_explains_the_read_balance_in_commit_order(
    services: Services,
    clock: FakeClock,
    collections: Collections,
    steps: list[tuple[str, int, int]],
) -> None:
    """The same movements one at a time, through the two movers in turn. After every step,
    without waiting for a sweep: the ledger read page by page lists each entry once,
    newest first in the order they committed, running to the balance read; and the change
    stream (what live events are made from) carried each entry once."""
    await empty_database()
    ledger = LedgerEntryDocument.get_pymongo_collection()
    movers = two_movers(services, clock, collections)
    made = Made()
    seen: Counter[str] = Counter()
    async with await ledger.watch([{"$match": {"operationType": "insert"}}]) as stream:
        for i, step in enumerate(steps):
            await take_step(movers[i % 2], clock, made, i, step)
            view = await services.wallets.balance(user_id="u1", offer_group="pro")
            pages = await read_in_pages(services.wallets)
            assert [e.seq for e in pages] == list(range(len(pages), 0, -1)), "commit order"
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


async def read_in_pages(wallets: Wallets) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    after = None
    while True:
        page = await wallets.ledger(user_id="u1", offer_group="pro", first=3, after=after)
        entries += page.entries
        if not page.has_next_page:
            return entries
        after = str(page.entries[-1].id)
