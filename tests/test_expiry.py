"""The expiry sweep and credit warnings against the real wire server."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import FakeClock, assert_invariant, buy, make_offer, snapshot
from usercredits.models import LedgerEntryDocument
from usercredits.services import Services
from usercredits.services.errors import Expired, InsufficientTokens
from usercredits.services.sweep import expire_due
from usercredits.services.wallets.base import SWEEP_BATCH
from usercredits.services.wallets.warnings import WarningKind, credit_warnings
from usercredits.values import LedgerReason, LotDraw, OrderStatus


async def sweep(services: Services, clock: FakeClock) -> int:
    result = await expire_due(wallets=services.wallets, orders=services.orders, now=clock.now())
    return result.tokens_expired


async def test_expired_group_cannot_be_consumed_and_the_sweep_zeroes_it(
    services: Services, clock: FakeClock
) -> None:
    offer = await make_offer(services, token_count=40)
    order_id = await buy(services, "u1", offer)
    await services.wallets.consume(user_id="u1", offer_group="pro", tokens=15, idempotency_key="k1")
    clock.current = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)  # the month is over
    before = await snapshot()
    with pytest.raises(Expired, match="expired at 2026-02-28"):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=1, idempotency_key="k2"
        )
    assert await snapshot() == before

    assert await sweep(services, clock) == 25
    balance = await assert_invariant("u1", "pro")
    assert balance.tokens == 0
    expiry = await LedgerEntryDocument.find_one({"reason": LedgerReason.EXPIRY.value})
    assert expiry is not None and (expiry.tokens, expiry.balance_after) == (-25, 0)
    order = await services.orders.get_order(order_id=order_id)
    assert order.status is OrderStatus.EXPIRED
    assert order.history[-1].status is OrderStatus.EXPIRED


async def test_sweeping_twice_and_concurrently_removes_tokens_once(
    services: Services, clock: FakeClock
) -> None:
    for user in ("u1", "u2", "u3"):
        await services.wallets.grant(
            user_id=user,
            offer_group="pro",
            tokens=10,
            idempotency_key="g",
            expires=clock.now() + timedelta(days=1),
        )
    clock.advance(days=2)
    removed = await asyncio.gather(*(sweep(services, clock) for _ in range(4)))
    assert sum(removed) == 30
    assert await sweep(services, clock) == 0
    for user in ("u1", "u2", "u3"):
        assert (await assert_invariant(user, "pro")).tokens == 0
    assert await LedgerEntryDocument.find({"reason": "expiry"}).count() == 3


async def test_a_sweep_of_more_balances_than_one_batch_expires_and_releases_each_once(
    services: Services, clock: FakeClock
) -> None:
    """The sweep moves balances a batch at a time; every batch, the last one short, counts."""
    wallets = services.wallets
    users = [f"u{n}" for n in range(SWEEP_BATCH * 2 + 3)]
    for user in users:
        await wallets.grant(
            user_id=user,
            offer_group="pro",
            tokens=10,
            idempotency_key="g",
            expires=clock.now() + timedelta(days=1),
        )
        await wallets.grant(user_id=user, offer_group="pro", tokens=5, idempotency_key="keep")
        await wallets.reserve(
            user_id=user, offer_group="pro", tokens=4, ttl_seconds=60, idempotency_key="r"
        )
    clock.advance(days=2)
    result = await expire_due(wallets=wallets, orders=services.orders, now=clock.now())
    assert (result.reservations_released, result.groups_expired) == (len(users), len(users))
    assert result.tokens_expired == 10 * len(users)
    for user in users:
        assert (await assert_invariant(user, "pro")).tokens == 5


async def test_append_date_lots_follow_each_other(services: Services, clock: FakeClock) -> None:
    """Each purchase keeps its own period: the first month's tokens lapse when it ends, the
    second month's (appended after it) live on until theirs ends."""
    offer = await make_offer(services, token_count=10, append_date=True)
    await buy(services, "u1", offer)
    await buy(services, "u1", offer)
    clock.current = datetime(2026, 3, 1, tzinfo=UTC)  # past the first month, inside the second
    assert await sweep(services, clock) == 10
    with pytest.raises(InsufficientTokens, match="has 10 tokens"):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=11, idempotency_key="k"
        )
    entry = await services.wallets.consume(
        user_id="u1", offer_group="pro", tokens=10, idempotency_key="k"
    )
    assert entry.balance_after == 0
    await assert_invariant("u1", "pro")


async def test_a_new_purchase_into_a_lapsed_group_never_revives_the_old_tokens(
    services: Services, clock: FakeClock
) -> None:
    offer = await make_offer(services, token_count=10)
    await buy(services, "u1", offer)
    clock.advance(days=60)
    await buy(services, "u1", offer)
    view = await services.wallets.balance(user_id="u1", offer_group="pro")
    assert view is not None and view.tokens == 10
    with pytest.raises(InsufficientTokens):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=11, idempotency_key="k"
        )
    # The second purchase wrote the first one's lapse before its own credit: the ledger
    # says why the balance is 10 before any sweep, and the sweep finds nothing to do.
    assert (await assert_invariant("u1", "pro")).tokens == 10
    entries = await LedgerEntryDocument.find().sort("seq").to_list()
    assert [(e.reason, e.balance_after) for e in entries] == [
        (LedgerReason.PURCHASE, 10),
        (LedgerReason.EXPIRY, 0),
        (LedgerReason.PURCHASE, 10),
    ]
    assert entries[1].lots == [LotDraw(lot_id=entries[0].lots[0].lot_id, tokens=10)]
    assert await sweep(services, clock) == 0


async def test_warnings_for_expiring_and_low_groups(services: Services, clock: FakeClock) -> None:
    now = clock.now()
    wallets = services.wallets
    await wallets.grant(
        user_id="u1",
        offer_group="soon",
        tokens=50,
        idempotency_key="a",
        expires=now + timedelta(days=2),
    )
    await wallets.grant(
        user_id="u1",
        offer_group="later",
        tokens=50,
        idempotency_key="b",
        expires=now + timedelta(days=30),
    )
    await wallets.grant(user_id="u1", offer_group="empty", tokens=5, idempotency_key="c")
    await wallets.consume(user_id="u1", offer_group="empty", tokens=5, idempotency_key="d")
    warnings = await credit_warnings(
        wallets=wallets, user_id="u1", within_seconds=7 * 24 * 3600, low_balance=0, now=now
    )
    assert {(w.offer_group, w.kind, w.tokens) for w in warnings} == {
        ("soon", WarningKind.EXPIRING, 50),
        ("empty", WarningKind.LOW_BALANCE, 0),
    }
    low = await credit_warnings(
        wallets=wallets, user_id="u1", within_seconds=60, low_balance=50, now=now
    )
    assert {(w.offer_group, w.kind) for w in low} == {
        ("soon", WarningKind.LOW_BALANCE),
        ("later", WarningKind.LOW_BALANCE),
        ("empty", WarningKind.LOW_BALANCE),
    }
