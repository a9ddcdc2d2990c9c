"""Bounds at input, through the API with the fake Stripe: no period ends after the latest
date the service keeps (cycles.LATEST), no price or order total passes GraphQL's Int, no
paid order could take a balance past what it holds, an order key reused for another
request is a conflict; and a sweep, on the server or `usercredits expire`, that a document
it cannot handle does not stop."""

import os
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from tests.api import SECRET, Api, sample, token
from tests.conftest import StartServer
from tests.shop import ADMIN, ALICE, BUY, PRO, Shop, upsert_offer
from tests.support import START, FakeClock, run_cli, snapshot
from tests.waits import until
from usercredits.models import LedgerEntryDocument, OrderDocument
from usercredits.services import Services
from usercredits.services.catalogue.files import CatalogueErrors, import_catalogue
from usercredits.services.identity.access import Role
from usercredits.services.payments import SandboxPaymentClient
from usercredits.values.lots import MAX_TOKENS

OFFER = "mutation($input: OfferInput!) { upsertOffer(input: $input) { id } }"
OFFERS = "query { offers { id prices { minorUnits } } }"
GRANT = "mutation($input: GrantTokensInput!) { grantTokens(input: $input) { id } }"
RULE = "mutation($input: AutoTopUpInput!) { setAutoTopUp(input: $input) { threshold } }"
ORDER_STATUS = "query($id: ID!) { order(id: $id) { status } }"
WAIT_SECONDS = 10.0
GOLD = {"name": "Gold", "kind": "TOKENS", "offerGroup": "pro", "tokenCount": 1, "cycle": "ONCE"}


async def refused(api: Api, query: str, variables: dict[str, Any], as_: str) -> dict[str, Any]:
    """The single error of a refused operation."""
    body = await api.call(query, variables, as_=as_)
    assert body.get("errors"), f"expected an error, got {body}"
    error: dict[str, Any] = body["errors"][0]
    return error


async def test_a_purchase_ending_after_the_latest_date_is_refused_before_payment(
    shop: Shop, services: Services
) -> None:
    """The Starter bundle (a year of Pro per bundle) x 8000 would end in the year 10026:
    refused before any payment, as are the other ways of stating such a period."""
    pro = await upsert_offer(shop.api, tokenCount=1000, appendDate=True)
    starter = await upsert_offer(
        shop.api,
        name="Starter bundle",
        kind="SUBSCRIPTION",
        offerGroup="bundle",
        tokenCount=0,
        prices=[{"amount": "199.00", "currency": "USD"}],
        cycle="YEARLY",
        combinedItems=[{"offerId": pro, "quantity": 1, "cycle": "YEARLY"}],
    )
    before = await snapshot()
    error = await refused(shop.api, BUY, {"input": {"offerId": starter, "quantity": 8000}}, ALICE)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ends after 9000-01-01" in error["message"]
    assert await snapshot() == before and shop.fake.create_requests == []
    assert (await shop.buy(starter, quantity=900))["order"]["status"] == "PENDING"

    # A top-up rule whose purchase would: 1000 x a 63-year cycle.
    ages = await upsert_offer(
        shop.api,
        offerGroup="chat",
        prices=[{"amount": "0.01", "currency": "USD"}],
        cycle="CUSTOM",
        customCycleSeconds=2_000_000_000,
    )
    rule = {"offerGroup": "chat", "offerId": ages, "threshold": 0, "quantity": 1000}
    error = await refused(shop.api, RULE, {"input": rule}, ALICE)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    # A grant that would.
    grant = {
        "userId": "alice",
        "offerGroup": "pro",
        "tokens": 10,
        "idempotencyKey": "late",
        "expires": "9999-12-31T00:00:00Z",
    }
    error = await refused(shop.api, GRANT, {"input": grant}, ADMIN)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "9000-01-01" in error["message"]
    # An offer whose one cycle would, from a catalogue file (GraphQL's Int cannot say it).
    catalogue = """offers:
  - {key: aeons, name: Aeons, kind: TOKENS, offerGroup: pro, tokenCount: 1,
     prices: {USD: "1.00"}, cycle: CUSTOM, customCycleSeconds: 1000000000000}
"""
    with pytest.raises(CatalogueErrors, match="ends after 9000-01-01"):
        await import_catalogue(offers=services.offers, text=catalogue)
    assert (await services.wallets.balances(user_id="alice")) == []


async def test_a_paid_order_that_would_overflow_its_balance_is_refused_before_payment(
    shop: Shop,
) -> None:
    pack = await upsert_offer(shop.api)
    grant = {
        "userId": "alice",
        "offerGroup": "pro",
        "tokens": MAX_TOKENS - 50,
        "idempotencyKey": "nearly-full",
    }
    await shop.api.data(GRANT, {"input": grant}, as_=ADMIN)
    before = await snapshot()
    error = await refused(shop.api, BUY, {"input": {"offerId": pack}}, ALICE)
    assert error["extensions"]["code"] == "QUANTITY_LIMIT"
    assert f"{MAX_TOKENS - 50} tokens in 'pro'" in error["message"]
    assert await snapshot() == before and shop.fake.create_requests == []


async def test_an_order_key_reused_for_another_quantity_or_currency_is_a_conflict(
    shop: Shop,
) -> None:
    pack = await upsert_offer(
        shop.api,
        prices=[{"amount": "9.99", "currency": "USD"}, {"amount": "8.99", "currency": "EUR"}],
    )
    first = await shop.buy(pack, quantity=1, idempotencyKey="cart-1")
    for other in ({"quantity": 2}, {"currency": "EUR"}):
        asked = {"offerId": pack, "idempotencyKey": "cart-1", **other}
        error = await refused(shop.api, BUY, {"input": asked}, ALICE)
        assert error["extensions"]["code"] == "CONFLICT", other
    again = await shop.buy(pack, quantity=1, currency="usd", idempotencyKey="cart-1")
    assert again["order"]["id"] == first["order"]["id"]
    assert len(shop.fake.intents) == 1


async def test_prices_and_totals_stay_within_graphql_int(shop: Shop, services: Services) -> None:
    """An offer priced over 2^31-1 minor units would blank the public offers list (minorUnits
    is an Int): refused, from the API and from a catalogue file, as is an order whose total
    would pass it."""
    too_much = {**GOLD, "prices": [{"amount": "21474836.48", "currency": "USD"}]}
    error = await refused(shop.api, OFFER, {"input": too_much}, ADMIN)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "2147483647" in error["message"]
    catalogue = """offers:
  - {key: gold, name: Gold, kind: TOKENS, offerGroup: pro, tokenCount: 1,
     prices: {USD: "30000000.00"}, cycle: ONCE}
"""
    with pytest.raises(CatalogueErrors, match="2147483647"):
        await import_catalogue(offers=services.offers, text=catalogue)

    most = await upsert_offer(shop.api, prices=[{"amount": "21474836.47", "currency": "USD"}])
    listed = (await shop.api.data(OFFERS))["offers"]
    assert [(o["id"], o["prices"][0]["minorUnits"]) for o in listed] == [(most, 2**31 - 1)]
    error = await refused(shop.api, BUY, {"input": {"offerId": most, "quantity": 2}}, ALICE)
    assert error["extensions"]["code"] == "QUANTITY_LIMIT"
    assert shop.fake.create_requests == []


async def plant_unreadable_order() -> None:
    """A pending order the code cannot read (as one written by a bug, or by hand), older than
    every other document, so that a sweep meets it first."""
    await OrderDocument.get_pymongo_collection().insert_one(
        {
            "_id": ObjectId.from_datetime(START - timedelta(days=30)),
            "user_id": "mallory",
            "status": "pending",
            "payment_intent_id": "pi_unreadable",
            "quantity": "a great many",
            "created_at": START - timedelta(days=30),
        }
    )


async def expired_entries(user_id: str) -> list[LedgerEntryDocument]:
    """The user's expiry entries, read from the database (a read through the service would
    write a due lapse itself)."""
    return await LedgerEntryDocument.find({"user_id": user_id, "reason": "expiry"}).to_list()


async def test_a_document_the_sweep_cannot_handle_does_not_stop_it(
    start_server: StartServer,
    http: aiohttp.ClientSession,
    clock: FakeClock,
    sandbox: SandboxPaymentClient,
) -> None:
    """The sweep meets an order it cannot read at every run: it logs and skips it, counts
    the run as failed, and goes on reconciling other orders and, run after run, expiring
    other users' lapsed lots."""
    await plant_unreadable_order()
    base = await start_server(clock=clock, sweep_interval_seconds=1, pending_reconcile_seconds=0)
    api = Api(http, f"{base}/graphql")
    admin, carol = token("admin-1", Role.ADMIN, at=clock.now()), token("carol", at=clock.now())
    upsert = "mutation U($input: OfferInput!) { upsertOffer(input: $input) { id } }"
    pack = (await api.data(upsert, {"input": PRO}, as_=admin))["upsertOffer"]["id"]
    created = (await api.data(BUY, {"input": {"offerId": pack}}, as_=carol))["createOrder"]
    order_id = created["order"]["id"]
    payment = created["paymentClientSecret"].split("_secret_")[0]
    sandbox.settle(payment, succeed=True)  # paid, and no webhook will say so
    grant = {
        "userId": "bob",
        "offerGroup": "pro",
        "tokens": 10,
        "idempotencyKey": "trial",
        "expires": (clock.now() + timedelta(days=1)).isoformat(),
    }
    await api.data(GRANT, {"input": grant}, as_=admin)
    clock.advance(seconds=1)

    async def paid() -> bool:
        order = (await api.data(ORDER_STATUS, {"id": order_id}, as_=carol))["order"]
        return bool(order["status"] == "PAID")

    async def bob_expired() -> bool:
        return bool(await expired_entries("bob"))

    await until(paid, seconds=WAIT_SECONDS, every=0.1, what="the order paid")
    clock.advance(days=2)  # bob's trial lapses after the first runs met the bad order
    await until(bob_expired, seconds=WAIT_SECONDS, every=0.1, what="bob's lot expired")
    [expiry] = await expired_entries("bob")
    assert expiry.tokens == -10
    async with http.get(f"{base}/metrics") as response:
        assert sample(await response.text(), "usercredits_sweep_runs_total", result="failed") >= 2


async def test_usercredits_expire_skips_what_it_cannot_handle(
    services: Services, database_uri: str, database_name: str, clock: FakeClock
) -> None:
    await plant_unreadable_order()
    await services.wallets.grant(
        user_id="bob",
        offer_group="pro",
        tokens=10,
        idempotency_key="trial",
        expires=clock.now() + timedelta(days=1),  # lapsed by the wall clock the command reads
    )
    env = {
        **os.environ,
        "USERCREDITS_MONGODB_URI": database_uri,
        "USERCREDITS_DATABASE": database_name,
        "USERCREDITS_JWT_SECRET": SECRET,
        "USERCREDITS_PENDING_RECONCILE_SECONDS": "0",
    }
    code, out, err = await run_cli("expire", env=env)
    assert code == 1, err
    assert "tokens_expired=10" in out and "skipped=1" in out
    assert "part of the sweep was skipped" in err
    assert [e.tokens for e in await expired_entries("bob")] == [-10]
