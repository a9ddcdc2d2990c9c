"""A property test: random sequences of credit, consume, reserve, commit, release and expiry
keep the wallet invariant, and no balance ever goes negative."""

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import ALL_DOCUMENTS
from services import Services
from services.errors import Conflict, Expired, InsufficientTokens, NotFound
from services.expiry import expire_due
from tests.support import FakeClock, assert_invariant

operation = st.one_of(
    st.tuples(st.just("grant"), st.integers(1, 20), st.integers(1, 3)),
    st.tuples(st.just("consume"), st.integers(1, 15), st.integers(0, 5)),
    st.tuples(st.just("reserve"), st.integers(1, 10), st.integers(1, 120)),
    st.tuples(st.just("commit"), st.integers(0, 10), st.integers(0, 4)),
    st.tuples(st.just("release"), st.integers(0, 10), st.integers(0, 4)),
    st.tuples(st.just("advance"), st.integers(1, 200), st.just(0)),
    st.tuples(st.just("sweep"), st.just(0), st.just(0)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(operation, min_size=1, max_size=25))
async def test_random_operations_keep_the_invariant(
    services: Services, clock: FakeClock, steps: list[tuple[str, int, int]]
) -> None:
    for document in ALL_DOCUMENTS:
        await document.get_pymongo_collection().delete_many({})
    wallets = services.wallets
    reservations: list[str] = []
    for i, (name, amount, extra) in enumerate(steps):
        try:
            if name == "grant":
                expires = clock.now() + timedelta(seconds=100 * extra)
                await wallets.grant(
                    user_id="u",
                    offer_group="g",
                    tokens=amount,
                    idempotency_key=f"g{i}",
                    expires=expires,
                )
            elif name == "consume":
                # Reusing an earlier step's key must replay, never debit twice.
                await wallets.consume(
                    user_id="u",
                    offer_group="g",
                    tokens=amount,
                    idempotency_key=f"c{max(0, i - extra)}",
                )
            elif name == "reserve":
                held = await wallets.reserve(
                    user_id="u",
                    offer_group="g",
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
                        reservation_id=rid, tokens=min(max(amount, 1), held_tokens)
                    )
                else:
                    await wallets.release_reservation(reservation_id=rid)
            elif name == "advance":
                clock.advance(seconds=amount)
            elif name == "sweep":
                await expire_due(wallets=wallets, orders=services.orders, now=clock.now())
        except (InsufficientTokens, Expired, NotFound, Conflict):
            pass
        if await wallets.balance(user_id="u", offer_group="g") is not None:
            await assert_invariant("u", "g")
