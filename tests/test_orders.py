"""The order lifecycle against the real wire server: totals, payment outcomes, expiry
dates, bundles, limits and idempotency."""

import asyncio
from datetime import UTC, datetime

import pytest

from tests.support import START, FakeClock, assert_invariant, buy, make_offer, snapshot
from usercredits.models import Balance, LedgerEntryDocument, OrderDocument
from usercredits.services import Services
from usercredits.services.errors import InvalidInput, KeyReused, OrderNotPending, QuantityLimit
from usercredits.services.money import Money
from usercredits.services.payments import SandboxPaymentClient
from usercredits.values import CombinedItem, Cycle, OrderStatus, Price


async def test_free_order_is_paid_at_once(services: Services) -> None:
    offer = await make_offer(
        services, prices=[Price(currency="USD", minor_units=0)], token_count=10
    )
    created = await services.orders.create_order(user_id="u1", offer_id=str(offer.id))
    assert created.order.status is OrderStatus.PAID
    assert created.payment_client_secret is None
    assert created.order.payment_intent_id is None
    assert [e.status for e in created.order.history] == [OrderStatus.PENDING, OrderStatus.PAID]
    balance = await assert_invariant("u1", "pro")
    assert balance.tokens == 10


async def test_priced_order_is_pending_until_the_sandbox_pays(
    services: Services, sandbox: SandboxPaymentClient
) -> None:
    offer = await make_offer(services, token_count=100)
    created = await services.orders.create_order(user_id="u1", offer_id=str(offer.id))
    order = created.order
    assert order.status is OrderStatus.PENDING
    assert created.payment_client_secret is not None
    assert order.total_minor_units == 999 and order.currency == "USD"
    assert await services.wallets.balance(user_id="u1", offer_group="pro") is None

    assert order.payment_intent_id is not None
    sandbox.settle(order.payment_intent_id, succeed=True)
    paid = await services.orders.refresh_order(order_id=str(order.id))
    assert paid.status is OrderStatus.PAID
    assert paid.starts == START
    assert paid.expires == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    await assert_invariant("u1", "pro")
    view = await services.wallets.balance(user_id="u1", offer_group="pro")
    assert view is not None and (view.tokens, view.expires) == (100, paid.expires)
    [lot] = view.lots
    assert (lot.order_id, lot.starts, lot.expires, lot.priority) == (
        str(order.id),
        paid.starts,
        paid.expires,
        50,
    )
    entries = await LedgerEntryDocument.find_all().to_list()
    assert [(e.tokens, e.reason.value, e.order_id) for e in entries] == [
        (100, "purchase", str(order.id))
    ]


async def test_refused_payment_credits_nothing(
    services: Services, sandbox: SandboxPaymentClient
) -> None:
    offer = await make_offer(services)
    order = (await services.orders.create_order(user_id="u1", offer_id=str(offer.id))).order
    assert order.payment_intent_id is not None
    sandbox.settle(order.payment_intent_id, succeed=False)
    refused = await services.orders.refresh_order(order_id=str(order.id))
    assert refused.status is OrderStatus.REFUSED
    assert await LedgerEntryDocument.count() == 0
    assert await services.wallets.balances(user_id="u1") == []


async def test_applying_the_same_outcome_twice_changes_nothing(services: Services) -> None:
    offer = await make_offer(services, token_count=7)
    order = (await services.orders.create_order(user_id="u1", offer_id=str(offer.id))).order
    oid = str(order.id)
    results = await asyncio.gather(
        *(services.orders.apply_status(order_id=oid, status=OrderStatus.PAID) for _ in range(5))
    )
    assert all(r.status is OrderStatus.PAID for r in results)
    await services.orders.apply_status(order_id=oid, status=OrderStatus.PAID)
    # A late failure never undoes a success.
    await services.orders.apply_status(order_id=oid, status=OrderStatus.REFUSED)
    final = await services.orders.get_order(order_id=oid)
    assert final.status is OrderStatus.PAID
    assert [e.status for e in final.history] == [OrderStatus.PENDING, OrderStatus.PAID]
    assert (await assert_invariant("u1", "pro")).tokens == 7
    assert await LedgerEntryDocument.count() == 1


async def test_refused_then_paid_is_allowed(services: Services) -> None:
    offer = await make_offer(services, token_count=3)
    oid = str((await services.orders.create_order(user_id="u1", offer_id=str(offer.id))).order.id)
    await services.orders.apply_status(order_id=oid, status=OrderStatus.REFUSED)
    paid = await services.orders.apply_status(order_id=oid, status=OrderStatus.PAID)
    assert [e.status for e in paid.history] == [
        OrderStatus.PENDING,
        OrderStatus.REFUSED,
        OrderStatus.PAID,
    ]
    assert (await assert_invariant("u1", "pro")).tokens == 3


async def test_quantity_multiplies_tokens_total_and_period(services: Services) -> None:
    offer = await make_offer(services, token_count=10, quantity_limit=5)
    order_id = await buy(services, "u1", offer, quantity=3)
    order = await services.orders.get_order(order_id=order_id)
    assert (order.total_minor_units, order.token_count) == (2997, 30)
    assert order.expires == datetime(2026, 4, 30, 12, 0, tzinfo=UTC)  # Jan 31 + 3 months
    assert (await assert_invariant("u1", "pro")).tokens == 30


async def test_quantity_limit_and_bad_quantities_change_nothing(services: Services) -> None:
    offer = await make_offer(services, quantity_limit=2)
    before = await snapshot()
    with pytest.raises(QuantityLimit, match="at most 2"):
        await services.orders.create_order(user_id="u1", offer_id=str(offer.id), quantity=3)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidInput):
            await services.orders.create_order(
                user_id="u1",
                offer_id=str(offer.id),
                quantity=bad,  # type: ignore[arg-type]
            )
    assert await snapshot() == before


async def test_currency_must_be_offered_and_known(services: Services) -> None:
    offer = await make_offer(
        services,
        prices=[Price(currency="USD", minor_units=999), Price(currency="JPY", minor_units=1500)],
    )
    before = await snapshot()
    with pytest.raises(InvalidInput, match="not sold in EUR"):
        await services.orders.create_order(user_id="u1", offer_id=str(offer.id), currency="EUR")
    with pytest.raises(InvalidInput, match="unknown currency"):
        await services.orders.create_order(user_id="u1", offer_id=str(offer.id), currency="ZZZ")
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("price", "quantity", "total"),
    [(Money(1999, "USD"), 2, 3998), (Money(500, "JPY"), 3, 1500), (Money(1234, "KWD"), 2, 2468)],
)
async def test_totals_in_minor_units(
    services: Services, sandbox: SandboxPaymentClient, price: Money, quantity: int, total: int
) -> None:
    offer = await make_offer(
        services, prices=[Price(currency=price.currency, minor_units=price.minor_units)]
    )
    created = await services.orders.create_order(
        user_id="u1", offer_id=str(offer.id), quantity=quantity, currency=price.currency.lower()
    )
    assert created.order.total_minor_units == total
    assert created.order.currency == price.currency
    assert created.order.payment_intent_id is not None
    payment = await sandbox.get_payment(created.order.payment_intent_id)
    assert payment.amount == Money(total, price.currency)


async def test_idempotent_create_returns_the_same_order(services: Services) -> None:
    offer = await make_offer(services)
    other = await make_offer(services, name="other", offer_group="other")
    results = await asyncio.gather(
        *(
            services.orders.create_order(user_id="u1", offer_id=str(offer.id), idempotency_key="k")
            for _ in range(10)
        )
    )
    assert len({str(r.order.id) for r in results}) == 1
    assert len({r.payment_client_secret for r in results}) == 1
    assert await OrderDocument.count() == 1
    with pytest.raises(KeyReused):
        await services.orders.create_order(
            user_id="u1", offer_id=str(other.id), idempotency_key="k"
        )
    # The key is per user.
    await services.orders.create_order(user_id="u2", offer_id=str(offer.id), idempotency_key="k")
    assert await OrderDocument.count() == 2


async def test_append_date_starts_where_the_last_purchase_ends(
    services: Services, clock: FakeClock
) -> None:
    offer = await make_offer(services, append_date=True, token_count=10)
    first = await services.orders.get_order(order_id=await buy(services, "u1", offer))
    clock.advance(days=3)
    second = await services.orders.get_order(order_id=await buy(services, "u1", offer))
    assert second.starts == first.expires
    assert second.expires == datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    await assert_invariant("u1", "pro")
    view = await services.wallets.balance(user_id="u1", offer_group="pro")
    assert view is not None and (view.tokens, view.expires) == (20, second.expires)
    # Each purchase is its own lot: the second starts where the first ends.
    assert [(lot.starts, lot.expires) for lot in view.lots] == [
        (first.starts, first.expires),
        (second.starts, second.expires),
    ]


async def test_without_append_date_overlapping_purchases_start_now(
    services: Services, clock: FakeClock
) -> None:
    offer = await make_offer(services, token_count=10)
    await buy(services, "u1", offer)
    now = clock.advance(days=3)
    second = await services.orders.get_order(order_id=await buy(services, "u1", offer))
    assert second.starts == now
    await assert_invariant("u1", "pro")
    view = await services.wallets.balance(user_id="u1", offer_group="pro")
    assert view is not None and view.expires == second.expires


async def test_bundle_creates_paid_children_per_item(services: Services) -> None:
    chat = await make_offer(
        services, name="chat", offer_group="chat", token_count=50, cycle=Cycle.ONCE
    )
    images = await make_offer(
        services, name="images", offer_group="images", token_count=5, cycle=Cycle.WEEKLY
    )
    bundle = await make_offer(
        services,
        name="bundle",
        offer_group="bundle",
        token_count=0,
        cycle=Cycle.MONTHLY,
        combined_items=[
            CombinedItem(offer_id=str(chat.id), quantity=2),  # no own cycle: the bundle's
            CombinedItem(offer_id=str(images.id), quantity=3, cycle=Cycle.YEARLY),
        ],
    )
    parent_id = await buy(services, "u1", bundle, quantity=2)
    children = await OrderDocument.find({"parent_id": parent_id}).sort("offer_group").to_list()
    assert [(c.offer_group, c.token_count, c.total_minor_units, c.status) for c in children] == [
        ("chat", 50 * 2 * 2, 0, OrderStatus.PAID),
        ("images", 5 * 3 * 2, 0, OrderStatus.PAID),
    ]
    assert children[0].expires == datetime(2026, 3, 31, 12, 0, tzinfo=UTC)  # 2 bundle months
    assert children[1].expires == datetime(2028, 1, 31, 12, 0, tzinfo=UTC)  # 2 item years
    assert (await assert_invariant("u1", "chat")).tokens == 200
    assert (await assert_invariant("u1", "images")).tokens == 30
    assert await Balance.find_one({"offer_group": "bundle", "starts": {"$ne": None}}) is None


async def test_bundle_item_with_append_date_starts_after_earlier_orders(
    services: Services,
) -> None:
    chat = await make_offer(
        services, name="chat", offer_group="chat", token_count=10, append_date=True
    )
    first = await services.orders.get_order(order_id=await buy(services, "u1", chat))
    bundle = await make_offer(
        services,
        name="bundle",
        offer_group="bundle",
        token_count=1,
        combined_items=[CombinedItem(offer_id=str(chat.id), quantity=1)],
    )
    parent_id = await buy(services, "u1", bundle)
    child = await OrderDocument.find_one({"parent_id": parent_id})
    assert child is not None
    assert child.starts == first.expires
    assert child.expires == datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert (await assert_invariant("u1", "chat")).tokens == 20


async def test_list_orders_by_status_and_page(services: Services) -> None:
    offer = await make_offer(services)
    paid_id = await buy(services, "u1", offer)
    pending = (await services.orders.create_order(user_id="u1", offer_id=str(offer.id))).order
    paid = await services.orders.list_orders(user_id="u1", status=OrderStatus.PAID)
    assert [str(o.id) for o in paid.orders] == [paid_id]
    everything = await services.orders.list_orders(user_id="u1", first=1)
    assert [o.id for o in everything.orders] == [pending.id] and everything.has_next_page
    rest = await services.orders.list_orders(user_id="u1", first=1, after=str(pending.id))
    assert [str(o.id) for o in rest.orders] == [paid_id] and not rest.has_next_page


async def test_cancel_only_a_pending_order(services: Services) -> None:
    offer = await make_offer(services)
    order = (await services.orders.create_order(user_id="u1", offer_id=str(offer.id))).order
    canceled = await services.orders.cancel_order(order_id=str(order.id))
    assert canceled.status is OrderStatus.CANCELED
    with pytest.raises(OrderNotPending):
        await services.orders.cancel_order(order_id=str(order.id))
    paid = await buy(services, "u1", offer)
    with pytest.raises(OrderNotPending, match="only a pending order"):
        await services.orders.cancel_order(order_id=paid)
