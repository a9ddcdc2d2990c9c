"""Lots: each credit keeps its own expiry, priority and source. The pure lot arithmetic
first, then the same rules through the wallet service against the real database."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tests.support import FakeClock, assert_invariant
from usercredits.models import LedgerEntryDocument, pack_lots
from usercredits.models.wallet import LOTS
from usercredits.services import Services
from usercredits.services.errors import Expired, InsufficientTokens
from usercredits.services.sweep import expire_due
from usercredits.services.wallets.credits import Credit
from usercredits.services.wallets.lots import draw, lapse, live_lots, settle, take_back, with_lot
from usercredits.values import LedgerReason, Lot, LotDraw, LotSource

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def lot(name: str, remaining: int, *, priority: int = 50, days: int | None = None) -> Lot:
    return Lot(
        id=name,
        source=LotSource.GRANT,
        tokens=remaining,
        remaining=remaining,
        starts=NOW,
        expires=None if days is None else NOW + timedelta(days=days),
        priority=priority,
        created_at=NOW,
    )


def test_debits_draw_by_priority_then_soonest_expiry_then_age() -> None:
    """Each lot goes to its place in spending order as it is credited; debits draw in it."""
    lots: list[Lot] = []
    for credited in (
        lot("never", 5),
        lot("year", 5, days=365),
        lot("month", 5, days=30),
        lot("promo", 5, priority=10, days=60),
    ):
        lots = with_lot(lots, credited)
    assert [x.id for x in lots] == ["promo", "month", "year", "never"]
    assert [x.id for x in live_lots(lots, NOW)] == ["promo", "month", "year", "never"]
    drawn = draw(lots, 12, NOW)
    assert drawn is not None
    assert drawn.draws == [
        LotDraw(lot_id="promo", tokens=5),
        LotDraw(lot_id="month", tokens=5),
        LotDraw(lot_id="year", tokens=2),
    ]
    assert {x.id: x.remaining for x in drawn.lots} == {
        "never": 5,
        "year": 3,
        "month": 0,
        "promo": 0,
    }
    assert draw(lots, 21, NOW) is None


def test_expired_lots_are_not_drawn_and_lapse_alone() -> None:
    lots = [lot("old", 5, days=1), lot("new", 5, days=30)]
    later = NOW + timedelta(days=2)
    assert draw(lots, 6, later) is None
    lapsed = lapse(lots, later)
    assert lapsed.draws == [LotDraw(lot_id="old", tokens=5)]
    assert [(x.id, x.remaining) for x in lapsed.lots] == [("old", 0), ("new", 5)]


def test_stored_lots_are_one_json_array_of_frozen_lots() -> None:
    """A balance's stored text is each lot's text joined, so a lot's text kept from an
    earlier write can stand in for it; lots are frozen, so a kept text cannot go stale."""
    lots = [lot("a", 3, priority=1), lot("b", 10, days=5)]
    text = pack_lots(lots)
    assert text == LOTS.dump_json(lots).decode()
    assert LOTS.validate_json(text) == lots
    assert pack_lots(lots, lambda x: "{}" if x.id == "b" else x.model_dump_json()).endswith(",{}]")
    with pytest.raises(ValidationError, match="frozen"):
        lots[0].remaining = 0


def test_a_debit_draws_past_expired_lots_and_stops_when_it_has_enough() -> None:
    lots = [lot("gone", 5, priority=1, days=1), lot("a", 2, days=30), lot("b", 4, days=40)]
    later = NOW + timedelta(days=2)
    drawn = draw(lots, 3, later)
    assert drawn is not None
    assert drawn.draws == [LotDraw(lot_id="a", tokens=2), LotDraw(lot_id="b", tokens=1)]
    assert [x.remaining for x in drawn.lots] == [5, 0, 3]
    assert drawn.lots[0] is lots[0], "an untouched lot stays the same object"
    assert draw(lots, 7, later) is None, "the expired lot's 5 tokens do not count"


def test_a_hold_settles_back_to_its_own_lots() -> None:
    lots = [lot("a", 3, priority=1), lot("b", 10)]
    held = draw(lots, 8, NOW, hold=True)
    assert held is not None
    assert [(x.remaining, x.held) for x in held.lots] == [(0, 3), (5, 5)]
    after, spent = settle(held.lots, held.draws, 4)
    assert spent == [LotDraw(lot_id="a", tokens=3), LotDraw(lot_id="b", tokens=1)]
    assert [(x.remaining, x.held) for x in after] == [(0, 0), (9, 0)]


def test_a_refund_takes_what_is_left_of_its_lot() -> None:
    paid = lot("paid", 10).model_copy(update={"order_id": "o1", "remaining": 4})
    taken = take_back([lot("other", 7), paid], "o1", NOW)
    assert taken.draws == [LotDraw(lot_id="paid", tokens=4)]
    assert [(x.id, x.remaining) for x in taken.lots] == [("paid", 0), ("other", 7)]
    assert taken.lots[0].expires == NOW  # it ended: it comes first in spending order


# --- through the service ------------------------------------------------------------------


async def test_a_promo_grant_is_spent_before_a_paid_lot(
    services: Services, clock: FakeClock
) -> None:
    wallets = services.wallets
    now = clock.now()
    await wallets.credit(
        Credit(
            user_id="u1",
            offer_group="pro",
            tokens=100,
            starts=now,
            expires=now + timedelta(days=365),
            reason=LedgerReason.PURCHASE,
            idempotency_key="order:o1",
            order_id="o1",
        )
    )
    promo = await wallets.grant(
        user_id="u1",
        offer_group="pro",
        tokens=20,
        idempotency_key="promo",
        expires=now + timedelta(days=30),
        priority=10,
    )
    debit = await wallets.consume(user_id="u1", offer_group="pro", tokens=25, idempotency_key="k")
    paid_lot = (await assert_invariant("u1", "pro")).lots[0]
    assert debit.lots == [
        LotDraw(lot_id=promo.lots[0].lot_id, tokens=20),
        LotDraw(lot_id=paid_lot.id, tokens=5),
    ]
    view = await wallets.balance(user_id="u1", offer_group="pro")
    assert view is not None and view.tokens == 95
    assert [(x.source, x.remaining, x.priority) for x in view.lots] == [(LotSource.ORDER, 95, 50)]
    # The spent promo lot is gone; the paid lot's year is untouched by it.
    assert view.expires == now + timedelta(days=365)


async def test_the_sooner_to_expire_goes_first_and_expiry_takes_only_its_lot(
    services: Services, clock: FakeClock
) -> None:
    wallets = services.wallets
    now = clock.now()
    late = await wallets.grant(
        user_id="u1",
        offer_group="pro",
        tokens=10,
        idempotency_key="late",
        expires=now + timedelta(days=20),
    )
    soon = await wallets.grant(
        user_id="u1",
        offer_group="pro",
        tokens=10,
        idempotency_key="soon",
        expires=now + timedelta(days=10),
    )
    view = await wallets.balance(user_id="u1", offer_group="pro")
    assert view is not None and view.next_expiry is not None
    assert (view.next_expiry.at, view.next_expiry.tokens) == (now + timedelta(days=10), 10)
    first = await wallets.consume(user_id="u1", offer_group="pro", tokens=4, idempotency_key="a")
    assert first.lots == [LotDraw(lot_id=soon.lots[0].lot_id, tokens=4)]
    # A reservation holds 3 tokens of the soon lot; its ttl ends before the lot lapses, so
    # the sweep gives them back to the soon lot first, then expires that lot whole.
    held = await wallets.reserve(
        user_id="u1", offer_group="pro", tokens=3, ttl_seconds=3600, idempotency_key="r"
    )
    clock.advance(days=11)
    result = await expire_due(wallets=wallets, orders=services.orders, now=clock.now())
    assert (result.reservations_released, result.tokens_expired) == (1, 6)
    # The release wrote the lapse of the soon lot's 3 spendable tokens before giving the
    # held 3 back to it; those lapse next.
    expiries = await LedgerEntryDocument.find({"reason": "expiry"}).sort("seq").to_list()
    assert [(e.tokens, e.lots) for e in expiries] == [
        (-3, [LotDraw(lot_id=soon.lots[0].lot_id, tokens=3)]),
        (-3, [LotDraw(lot_id=soon.lots[0].lot_id, tokens=3)]),
    ]
    balance = await assert_invariant("u1", "pro")
    assert [(x.id, x.remaining) for x in balance.lots] == [(late.lots[0].lot_id, 10)]
    assert (await wallets.reservation(reservation_id=str(held.id))).status.value == "released"
    with pytest.raises(InsufficientTokens, match="has 10 tokens"):
        await wallets.consume(user_id="u1", offer_group="pro", tokens=11, idempotency_key="b")


async def test_a_held_lot_that_lapses_keeps_its_hold_until_it_settles(
    services: Services, clock: FakeClock
) -> None:
    wallets = services.wallets
    now = clock.now()
    await wallets.grant(
        user_id="u1",
        offer_group="pro",
        tokens=10,
        idempotency_key="g",
        expires=now + timedelta(days=1),
    )
    await wallets.grant(user_id="u1", offer_group="pro", tokens=5, idempotency_key="forever")
    held = await wallets.reserve(
        user_id="u1", offer_group="pro", tokens=4, ttl_seconds=7 * 24 * 3600, idempotency_key="r"
    )
    clock.advance(days=2)
    expired = await wallets.expire_lapsed_groups(now=clock.now())
    assert [e.tokens for e in expired] == [-6]  # the 4 held tokens are not the sweep's
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved) == (5, 4)
    spent = await wallets.commit_reservation(reservation_id=str(held.id), tokens=4)
    assert spent.tokens == -4
    assert (await assert_invariant("u1", "pro")).tokens == 5


async def test_a_refund_takes_back_exactly_what_is_left_of_the_orders_lot(
    services: Services, clock: FakeClock
) -> None:
    wallets = services.wallets
    now = clock.now()
    await wallets.grant(user_id="u1", offer_group="pro", tokens=50, idempotency_key="g")
    for order_id in ("o1", "o2"):
        await wallets.credit(
            Credit(
                user_id="u1",
                offer_group="pro",
                tokens=30,
                starts=now,
                expires=now + timedelta(days=30 if order_id == "o1" else 60),
                reason=LedgerReason.PURCHASE,
                idempotency_key=f"order:{order_id}",
                order_id=order_id,
                priority=40,
            )
        )
    await wallets.consume(user_id="u1", offer_group="pro", tokens=40, idempotency_key="k")
    # o1 (sooner) gave 30, o2 gave 10; the grant (priority 50) none.
    refund = await wallets.take_back(user_id="u1", offer_group="pro", tokens=30, order_id="o2")
    assert refund is not None and refund.tokens == -20
    assert refund.note is not None and "took back 20 of 30 tokens, 10 already spent" in refund.note
    again = await wallets.take_back(user_id="u1", offer_group="pro", tokens=30, order_id="o2")
    assert again is not None and again.id == refund.id
    assert (await assert_invariant("u1", "pro")).tokens == 50


async def test_tokens_held_when_their_lot_is_refunded_are_not_spendable_once_released(
    services: Services, clock: FakeClock
) -> None:
    """A refund takes back what is left of the order's lot; tokens a reservation held then
    are the job's to spend, but if it releases them they go back to a refunded lot, which
    gives nothing again: they expire at the next sweep, with an entry that says so."""
    wallets = services.wallets
    now = clock.now()
    await wallets.credit(
        Credit(
            user_id="u1",
            offer_group="pro",
            tokens=30,
            starts=now,
            expires=now + timedelta(days=30),
            reason=LedgerReason.PURCHASE,
            idempotency_key="order:o1",
            order_id="o1",
        )
    )
    held = await wallets.reserve(user_id="u1", offer_group="pro", tokens=10, idempotency_key="job")
    refund = await wallets.take_back(user_id="u1", offer_group="pro", tokens=30, order_id="o1")
    assert refund is not None and refund.tokens == -20
    assert refund.note is not None and refund.note.endswith(
        "took back 20 of 30 tokens, 0 already spent could not be recovered, "
        "10 held by reservations expire if given back"
    )
    await wallets.release_reservation(reservation_id=held.id)
    # The lot ended with the refund: what came back to it ended then too.
    with pytest.raises(Expired, match=re.escape(f"expired at {now.isoformat()}")):
        await wallets.consume(user_id="u1", offer_group="pro", tokens=1, idempotency_key="k")
    # Reading the balance writes the lapse of the tokens that came back to the ended lot,
    # so the ledger read next adds up to what was read.
    [view] = await wallets.balances(user_id="u1")
    assert view.tokens == 0
    last = (await wallets.ledger(user_id="u1", first=1)).entries[0]
    assert (last.reason, last.tokens, last.balance_after) == (LedgerReason.EXPIRY, -10, 0)
    assert (await assert_invariant("u1", "pro")).tokens == 0
    clock.advance(seconds=1)
    assert await wallets.expire_lapsed_groups(now=clock.now()) == []
    # Still EXPIRED after the lapse is written: tokens lapsed and none were credited since.
    with pytest.raises(Expired):
        await wallets.consume(user_id="u1", offer_group="pro", tokens=1, idempotency_key="k2")


async def test_many_lots_stay_in_spending_order_and_whole(
    services: Services, clock: FakeClock
) -> None:
    """Debits within the first lots and across many of them, a hold and its commit keep
    the lots in spending order and the ledger whole."""
    wallets = services.wallets
    window = 16
    count = window + 10
    for n in range(count):  # the later a grant, the sooner it expires: spent first
        await wallets.grant(
            user_id="u1",
            offer_group="pro",
            tokens=3,
            idempotency_key=f"g{n}",
            expires=clock.now() + timedelta(days=count - n),
        )
    first = await wallets.consume(user_id="u1", offer_group="pro", tokens=4, idempotency_key="a")
    newest = (await assert_invariant("u1", "pro")).lots
    assert [d.tokens for d in first.lots] == [3, 1]
    # The soonest to expire (granted last) was emptied and left; the next one gave 1.
    assert first.lots[0].lot_id not in {lot.id for lot in newest}
    assert (newest[0].id, newest[0].remaining) == (first.lots[1].lot_id, 2)
    held = await wallets.reserve(
        user_id="u1", offer_group="pro", tokens=5, ttl_seconds=60, idempotency_key="r"
    )
    # More than the first 16 lots hold.
    big = await wallets.consume(
        user_id="u1", offer_group="pro", tokens=3 * window + 2, idempotency_key="b"
    )
    assert sum(d.tokens for d in big.lots) == 3 * window + 2
    await wallets.commit_reservation(reservation_id=str(held.id), tokens=5)
    balance = await assert_invariant("u1", "pro")
    assert balance.tokens == 3 * count - 4 - 5 - (3 * window + 2)
    assert [lot.expires for lot in balance.lots] == sorted(lot.expires for lot in balance.lots)
    with pytest.raises(InsufficientTokens, match=f"has {balance.tokens} tokens"):
        await wallets.consume(
            user_id="u1", offer_group="pro", tokens=balance.tokens + 1, idempotency_key="c"
        )
