"""Stripe payments end to end: the real `stripe` SDK against a fake Stripe server, webhooks
signed with Stripe's real scheme delivered over HTTP to the real app."""

import asyncio
import time
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.api import sample
from tests.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, event, sign
from tests.shop import ALICE, BUY, ORDER, Shop
from tests.support import FakeClock, assert_invariant, make_offer
from usercredits.models import LedgerEntryDocument, OrderDocument, ProcessedEvent
from usercredits.services import build_services
from usercredits.services.payments.stripe import StripePaymentClient
from usercredits.services.sweep import expire_due


async def test_create_order_makes_a_payment_intent(shop: Shop) -> None:
    offer = await shop.offer()
    created = await shop.buy(offer, quantity=2, idempotencyKey="cart")
    order = created["order"]
    intent = shop.fake.intent_for(order["id"])
    assert created["paymentClientSecret"] == intent["client_secret"]
    request = shop.fake.create_requests[-1]
    assert request["amount"] == "1998" and request["currency"] == "usd"
    assert request["metadata[order_id]"] == order["id"]
    assert request["metadata[user_id]"] == "alice"
    stored = await OrderDocument.get(order["id"])
    assert stored is not None and stored.payment_intent_id == intent["id"]
    # The sandbox-only mutation does not exist with Stripe.
    body = await shop.api.call(
        'mutation { completeSandboxPayment(orderId: "x") { id } }', as_=ALICE
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    again = await shop.buy(offer, quantity=2, idempotencyKey="cart")
    assert again["order"]["id"] == order["id"] and len(shop.fake.intents) == 1


async def test_success_credits_tokens_once_also_for_duplicates(shop: Shop) -> None:
    order = (await shop.buy(await shop.offer()))["order"]
    intent = shop.fake.intent_for(order["id"])
    shop.fake.succeed(intent)
    body = event("payment_intent.succeeded", intent)
    assert await shop.deliver(body) == (200, {"received": True, "outcome": "paid"})
    assert await shop.deliver(body) == (200, {"received": True, "outcome": "duplicate"})
    twin = event("payment_intent.succeeded", intent)  # another delivery id, same news
    results = await asyncio.gather(*(shop.deliver(twin) for _ in range(5)))
    assert all(status == 200 for status, _ in results)
    assert await shop.status(order["id"]) == "PAID"
    assert await shop.tokens() == 100
    assert await LedgerEntryDocument.find({"reason": "purchase"}).count() == 1
    received = "usercredits_webhook_events_total"
    text = await shop.metrics()
    outcomes = [
        sample(text, received, type="payment_intent.succeeded", result=result)
        for result in ("paid", "duplicate")
    ]
    assert outcomes[0] >= 1 and outcomes[1] >= 1 and sum(outcomes) == 7


@pytest.mark.parametrize(("received", "currency"), [(500, "usd"), (999, "eur")])
async def test_wrong_amount_or_currency_is_inconsistent(
    shop: Shop, received: int, currency: str
) -> None:
    order = (await shop.buy(await shop.offer()))["order"]
    intent = shop.fake.intent_for(order["id"])
    shop.fake.succeed(intent, amount_received=received)
    status, _ = await shop.deliver(
        event("payment_intent.succeeded", {**intent, "currency": currency})
    )
    assert status == 200
    assert await shop.status(order["id"]) == "INCONSISTENT"
    assert await shop.tokens() is None
    history = (await shop.api.data(ORDER, {"id": order["id"]}, as_=ALICE))["order"]["history"]
    assert "expected 9.99 USD" in history[-1]["message"]


async def test_bad_deliveries_get_400_and_change_nothing(shop: Shop) -> None:
    order = (await shop.buy(await shop.offer()))["order"]
    intent = shop.fake.intent_for(order["id"])
    shop.fake.succeed(intent)
    body = event("payment_intent.succeeded", intent)
    stale = int(time.time()) - 3600
    genuine = sign(body)
    cases = [
        genuine[:-1] + ("1" if genuine.endswith("0") else "0"),  # a digest one digit off
        sign(body, timestamp=stale),  # replayed after the tolerance
        sign(body, secret="whsec_someone_else"),
        "",
    ]
    for signature in cases:
        status, answer = await shop.deliver(body, signature)
        assert status == 400, answer
    status, _ = await shop.deliver(b"{not json", sign(b"{not json"))
    assert status == 400
    rejected = sample(
        await shop.metrics(), "usercredits_webhook_events_total", type="", result="rejected"
    )
    assert rejected == len(cases) + 1
    assert await shop.status(order["id"]) == "PENDING"
    assert await ProcessedEvent.count() == 0 and await LedgerEntryDocument.count() == 0


async def test_events_out_of_order(shop: Shop) -> None:
    offer = await shop.offer()
    first = (await shop.buy(offer))["order"]
    intent = shop.fake.intent_for(first["id"])
    shop.fake.succeed(intent)
    await shop.deliver(event("payment_intent.succeeded", intent))
    declined = {
        **intent,
        "status": "requires_payment_method",
        "last_payment_error": {"message": "Your card was declined."},
    }
    await shop.deliver(event("payment_intent.payment_failed", declined))
    await shop.deliver(event("payment_intent.canceled", {**intent, "status": "canceled"}))
    assert await shop.status(first["id"]) == "PAID"

    second = (await shop.buy(offer))["order"]
    retry = shop.fake.intent_for(second["id"])
    shop.fake.decline(retry)
    await shop.deliver(event("payment_intent.payment_failed", retry))
    assert await shop.status(second["id"]) == "REFUSED"
    shop.fake.succeed(retry)
    await shop.deliver(event("payment_intent.succeeded", retry))
    assert await shop.status(second["id"]) == "PAID"
    assert await shop.tokens() == 200


async def test_refund_takes_back_unused_tokens(shop: Shop) -> None:
    order = (await shop.buy(await shop.offer()))["order"]
    intent = shop.fake.intent_for(order["id"])
    shop.fake.succeed(intent)
    await shop.deliver(event("payment_intent.succeeded", intent))
    await shop.api.data(
        """mutation { consumeTokens(input: {offerGroup: "pro", tokens: 30,
           idempotencyKey: "used"}) { id } }""",
        as_=ALICE,
    )
    refund = event("charge.refunded", FakeStripe.refund_charge(intent))
    assert (await shop.deliver(refund))[1]["outcome"] == "refunded"
    assert (await shop.deliver(refund))[1]["outcome"] == "duplicate"
    assert await shop.status(order["id"]) == "REFUNDED"
    assert await shop.tokens() == 0
    entry = await LedgerEntryDocument.find_one({"reason": "refund"})
    assert entry is not None and (entry.tokens, entry.balance_after) == (-70, 0)
    assert entry.note is not None and "30 already spent could not be recovered" in entry.note


async def test_unknown_payments_and_other_events_are_acknowledged(shop: Shop) -> None:
    stranger = event(
        "payment_intent.succeeded",
        {
            "id": "pi_unknown",
            "amount": 100,
            "amount_received": 100,
            "currency": "usd",
            "status": "succeeded",
        },
    )
    assert (await shop.deliver(stranger))[1]["outcome"] == "unknown payment"
    other = event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await shop.deliver(other))[1]["outcome"] == "ignored"


async def test_jpy_and_kwd_amounts(shop: Shop) -> None:
    offer = await shop.offer(JPY="1500", KWD="1.230", USD="9.99")
    jpy = (await shop.buy(offer, currency="JPY", quantity=2))["order"]
    assert shop.fake.create_requests[-1]["amount"] == "3000"
    assert shop.fake.create_requests[-1]["currency"] == "jpy"
    kwd = (await shop.buy(offer, currency="KWD"))["order"]
    assert shop.fake.create_requests[-1]["amount"] == "1230"
    assert kwd["total"] == {"amount": "1.230", "currency": "KWD", "minorUnits": 1230}
    for order in (jpy, kwd):
        intent = shop.fake.intent_for(order["id"])
        shop.fake.succeed(intent)
        await shop.deliver(event("payment_intent.succeeded", intent))
        assert await shop.status(order["id"]) == "PAID"

    odd = await shop.offer(KWD="1.234")
    requests = len(shop.fake.create_requests)
    code = await shop.api.error_code(BUY, {"input": {"offerId": odd, "currency": "KWD"}}, as_=ALICE)
    assert code == "PAYMENT_FAILED"
    assert len(shop.fake.create_requests) == requests  # refused before anything was sent
    assert await OrderDocument.find({"currency": "KWD"}).count() == 1


async def test_missed_webhook_refresh_and_failures(shop: Shop) -> None:
    offer = await shop.offer()
    order = (await shop.buy(offer))["order"]
    refresh = f'mutation {{ refreshOrder(id: "{order["id"]}") {{ status }} }}'
    shop.fake.down = True
    assert await shop.api.error_code(refresh, as_=ALICE) == "PAYMENT_FAILED"
    assert await shop.status(order["id"]) == "PENDING"
    shop.fake.down = False
    assert (await shop.api.data(refresh, as_=ALICE))["refreshOrder"]["status"] == "PENDING"
    shop.fake.succeed(shop.fake.intent_for(order["id"]))
    assert (await shop.api.data(refresh, as_=ALICE))["refreshOrder"]["status"] == "PAID"
    assert await shop.tokens() == 100

    shop.fake.decline_next_create = True
    before = await OrderDocument.count()
    assert (
        await shop.api.error_code(BUY, {"input": {"offerId": offer}}, as_=ALICE) == "PAYMENT_FAILED"
    )
    assert await OrderDocument.count() == before


async def test_cancel_order_cancels_the_intent(shop: Shop) -> None:
    order = (await shop.buy(await shop.offer()))["order"]
    canceled = await shop.api.data(
        f'mutation {{ cancelOrder(id: "{order["id"]}") {{ status }} }}', as_=ALICE
    )
    assert canceled["cancelOrder"]["status"] == "CANCELED"
    assert shop.fake.intent_for(order["id"])["status"] == "canceled"


async def test_the_sweep_reconciles_old_pending_orders(
    database: AsyncDatabase[Any], fake_stripe: tuple[FakeStripe, str], clock: FakeClock
) -> None:
    fake, api_base = fake_stripe
    stripe_client = StripePaymentClient(
        secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET, api_base=api_base
    )
    services = build_services(
        database=database, payments=stripe_client, clock=clock, default_currency="USD"
    )
    offer = await make_offer(services)
    order = (await services.orders.create_order(user_id="u1", offer_id=str(offer.id))).order
    fake.succeed(fake.intent_for(str(order.id)))  # and its webhook is lost

    young = await expire_due(wallets=services.wallets, orders=services.orders, now=clock.now())
    assert young.orders_reconciled == 0
    clock.advance(minutes=20)
    swept = await expire_due(wallets=services.wallets, orders=services.orders, now=clock.now())
    assert swept.orders_reconciled == 1
    assert (await services.orders.get_order(order_id=str(order.id))).status.value == "paid"
    assert (await assert_invariant("u1", "pro")).tokens == 100
    await stripe_client.close()
