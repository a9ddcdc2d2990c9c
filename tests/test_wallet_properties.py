"""A property test: random batches of every movement (credits, grants with priorities,
debits with replayed keys, reservations, commits, releases, refunds, time passing, sweeps)
run concurrently through two independent movers, as two processes would. After each batch
every lot is whole, the ledger adds up to the balance, and tokens are conserved."""

import asyncio
import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import FakeClock, assert_invariant, order_credit
from usercredits.models import ALL_DOCUMENTS, LedgerEntryDocument
from usercredits.services import Services
from usercredits.services.errors import Conflict, Expired, InsufficientTokens, NotFound
from usercredits.services.movements import Movements
from usercredits.services.wallets import Wallets

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
