"""Saved cards and auto top-up, end to end: the real `stripe` SDK against the fake Stripe
server, debits over HTTP to real server instances, and every guard against charging a card
more than it should be."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.api import Api, token
from tests.conftest import StartServer, serve_env
from tests.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, event, server_settings, sign
from tests.receiver import running_receiver
from tests.support import START, FakeClock, make_offer, run_cli
from tests.waits import top_ups_settled
from usercredits.models import LedgerEntryDocument, PaymentCustomerDocument, TopUpAttemptDocument
from usercredits.services import Services, build_services
from usercredits.services.identity.access import Role
from usercredits.services.payments.stripe import StripePaymentClient
from usercredits.services.steps import Swept

# Issued on the servers' FakeClock, which one test moves on by a month.
ADMIN = token("admin-1", Role.ADMIN, at=START, ttl=timedelta(days=365))
ALICE = token("alice", at=START, ttl=timedelta(days=365))

OFFER = "mutation($input: OfferInput!) { upsertOffer(input: $input) { id } }"
GRANT = """mutation($input: GrantTokensInput!) { grantTokens(input: $input) { id } }"""
SETUP = "mutation { setupPaymentMethod }"
RULE = """mutation($input: AutoTopUpInput!) { setAutoTopUp(input: $input) {
  offerGroup offerId quantity threshold maxPerMonth enabled lastOrderId lastError } }"""
WALLET = """query { wallet { paymentMethods { id brand last4 expMonth expYear }
  autoTopUps { offerGroup threshold maxPerMonth lastAttemptAt lastOrderId lastError }
  balance(offerGroup: "chat") { tokens } } }"""
CONSUME = """mutation($input: ConsumeTokensInput!) { consumeTokens(input: $input) {
  balanceAfter } }"""
WAIT_SECONDS = 10.0


class CardShop:
    """Server instances on one fake Stripe, and what a test does through them."""

    def __init__(
        self, apis: list[Api], fake: FakeStripe, http: aiohttp.ClientSession | None = None
    ) -> None:
        self.apis, self.fake, self.http = apis, fake, http
        self.api = apis[0]
        self.debits = 0

    async def deliver(self, body: bytes) -> tuple[int, Any]:
        """A signed Stripe webhook to the first instance."""
        assert self.http is not None
        base = self.api.url.removesuffix("/graphql")
        headers = {"Stripe-Signature": sign(body), "Content-Type": "application/json"}
        async with self.http.post(f"{base}/webhooks/stripe", data=body, headers=headers) as r:
            return r.status, await r.json()

    async def offer(self, tokens: int = 100, group: str = "chat", **more: Any) -> str:
        data = await self.api.data(
            OFFER,
            {
                "input": {
                    "name": f"{tokens} {group} tokens",
                    "kind": "TOKENS",
                    "offerGroup": group,
                    "tokenCount": tokens,
                    "prices": [{"amount": "4.99", "currency": "USD"}],
                    "cycle": "ONCE",
                    **more,
                }
            },
            as_=ADMIN,
        )
        offer_id: str = data["upsertOffer"]["id"]
        return offer_id

    async def grant(self, tokens: int) -> None:
        await self.api.data(
            GRANT,
            {
                "input": {
                    "userId": "alice",
                    "offerGroup": "chat",
                    "tokens": tokens,
                    "idempotencyKey": f"grant-{tokens}-{self.debits}",
                }
            },
            as_=ADMIN,
        )

    async def save_card(self, last4: str = "4242") -> str:
        secret = (await self.api.data(SETUP, as_=ALICE))["setupPaymentMethod"]
        [setup] = [s for s in self.fake.setup_intents.values() if s["client_secret"] == secret]
        return self.fake.save_card(setup["customer"], last4=last4)

    async def rule(self, offer_id: str, **fields: Any) -> dict[str, Any]:
        data = await self.api.data(
            RULE,
            {"input": {"offerGroup": "chat", "offerId": offer_id, "threshold": 20, **fields}},
            as_=ALICE,
        )
        rule: dict[str, Any] = data["setAutoTopUp"]
        return rule

    async def consume(self, tokens: int, api: Api | None = None) -> dict[str, Any]:
        self.debits += 1
        return await (api or self.api).call(
            CONSUME,
            {
                "input": {
                    "offerGroup": "chat",
                    "tokens": tokens,
                    "idempotencyKey": f"debit-{self.debits}",
                }
            },
            as_=ALICE,
        )

    async def wallet(self) -> dict[str, Any]:
        wallet: dict[str, Any] = (await self.api.data(WALLET, as_=ALICE))["wallet"]
        return wallet

    async def tokens(self) -> int:
        balance = (await self.wallet())["balance"]
        return 0 if balance is None else int(balance["tokens"])

    async def settled(self, condition: Any) -> dict[str, Any]:
        """The wallet once `condition(wallet)` holds; fails after WAIT_SECONDS."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                wallet = await self.wallet()
                if condition(wallet):
                    return wallet
                await asyncio.sleep(0.05)

    async def quiet(self) -> None:
        """Returns once every instance's trigger has acted on what it was shown (for checks
        that nothing happened)."""
        assert self.http is not None
        entries = await LedgerEntryDocument.get_pymongo_collection().count_documents({})
        bases = [api.url.removesuffix("/graphql") for api in self.apis]
        await top_ups_settled(self.http, bases, entries)


@pytest.fixture
async def cards(
    http: aiohttp.ClientSession,
    start_server: StartServer,
    fake_stripe: tuple[FakeStripe, str],
    clock: FakeClock,
) -> CardShop:
    fake, api_base = fake_stripe
    bases = [await start_server(clock=clock, **server_settings(api_base)) for _ in range(2)]
    return CardShop([Api(http, f"{base}/graphql") for base in bases], fake, http)


def rule_of(wallet: dict[str, Any]) -> dict[str, Any]:
    [rule] = wallet["autoTopUps"]
    return rule


async def test_a_saved_card_tops_the_group_up_when_a_debit_leaves_it_low(cards: CardShop) -> None:
    offer = await cards.offer(tokens=100)
    await cards.grant(100)
    card = await cards.save_card()
    wallet = await cards.wallet()
    assert wallet["paymentMethods"] == [
        {"id": card, "brand": "visa", "last4": "4242", "expMonth": 12, "expYear": 2040}
    ]
    customers = await PaymentCustomerDocument.find().to_list()
    assert [(c.id, c.provider) for c in customers] == [("alice", "stripe")]
    rule = await cards.rule(offer, threshold=20, maxPerMonth=3)
    assert rule == {
        "offerGroup": "chat",
        "offerId": offer,
        "quantity": 1,
        "threshold": 20,
        "maxPerMonth": 3,
        "enabled": True,
        "lastOrderId": None,
        "lastError": None,
    }

    await cards.consume(70)  # 30 left: above the threshold, nothing happens
    await cards.quiet()
    assert cards.fake.off_session_charges == []
    await cards.consume(15)  # 15 left
    # The rule names the attempt's order before the charge, and the order's lot is credited
    # a moment before the order is marked paid: wait for the credit and the rule here, for
    # the order's status below.
    wallet = await cards.settled(
        lambda w: w["balance"]["tokens"] == 115 and rule_of(w)["lastOrderId"] is not None
    )

    [charge] = cards.fake.off_session_charges
    assert charge["customer"] == wallet_customer(customers)
    assert charge["payment_method"] == card
    assert (charge["amount"], charge["currency"], charge["status"]) == (499, "usd", "succeeded")
    rule = rule_of(wallet)
    assert rule["lastError"] is None and rule["lastAttemptAt"] is not None
    order = rule["lastOrderId"]
    assert charge["metadata"]["order_id"] == order
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            status = await cards.api.data(
                "query($id: ID!) { order(id: $id) { status tokenCount } }", {"id": order}, as_=ALICE
            )
            if status["order"]["status"] != "PENDING":
                break
            await asyncio.sleep(0.05)
    assert status["order"] == {"status": "PAID", "tokenCount": 100}


def wallet_customer(customers: list[PaymentCustomerDocument]) -> str:
    [customer] = customers
    return customer.customer_id


async def test_a_burst_of_debits_on_two_instances_charges_once(cards: CardShop) -> None:
    """1,000 debits, half through each instance, while the top-up's payment is processing:
    one charge, credited once when Stripe says it succeeded."""
    offer = await cards.offer(tokens=1000)
    await cards.grant(150)
    await cards.save_card()
    await cards.rule(offer, threshold=100, maxPerMonth=5)
    cards.fake.process_charges = True
    semaphore = asyncio.Semaphore(16)

    async def debit(i: int) -> dict[str, Any]:
        async with semaphore:
            return await cards.consume(1, cards.apis[i % 2])

    answers = await asyncio.gather(*(debit(i) for i in range(1000)))
    refused = [a for a in answers if a.get("errors")]
    assert all(a["errors"][0]["extensions"]["code"] == "INSUFFICIENT_TOKENS" for a in refused)
    assert len(refused) == 850 and await cards.tokens() == 0
    await cards.quiet()
    [charge] = cards.fake.off_session_charges
    [attempt] = await TopUpAttemptDocument.find().to_list()
    assert (attempt.open, attempt.charged) == (True, True)

    cards.fake.succeed(charge)
    body = event("payment_intent.succeeded", charge)
    assert (await cards.deliver(body))[0] == 200
    assert await cards.tokens() == 1000
    await cards.consume(950)  # low again: the paid attempt closes and a new one is made
    await cards.settled(lambda w: len(cards.fake.off_session_charges) == 2)
    attempts = await TopUpAttemptDocument.find().sort("created_at").to_list()
    assert [(a.open, a.outcome) for a in attempts] == [(False, "paid"), (True, None)]


async def declined(cards: CardShop, *, granted: int, spent: int) -> tuple[str, dict[str, Any]]:
    """A rule (threshold 50, a 100-token offer) whose card is declined by the debit of
    `spent` of `granted` tokens; the offer and the wallet once the refusal is recorded."""
    offer = await cards.offer(tokens=100)
    await cards.grant(granted)
    await cards.save_card()
    await cards.rule(offer, threshold=50)
    cards.fake.refuse_charges = "card_declined"
    await cards.consume(spent)
    return offer, await cards.settled(lambda w: rule_of(w)["lastError"] is not None)


async def test_a_declined_card_stops_the_rule_until_the_card_or_the_rule_changes(
    cards: CardShop,
) -> None:
    offer, wallet = await declined(cards, granted=100, spent=60)
    assert rule_of(wallet)["lastError"] == "card_declined: Your card was declined."
    assert wallet["balance"]["tokens"] == 40  # nothing credited
    assert len(cards.fake.off_session_charges) == 1
    for _ in range(5):  # more debits below the threshold: the same card is not tried again
        await cards.consume(1)
    await cards.quiet()
    assert len(cards.fake.off_session_charges) == 1

    cards.fake.refuse_charges = None
    new_card = await cards.save_card(last4="1881")
    await cards.consume(1)
    wallet = await cards.settled(
        lambda w: w["balance"]["tokens"] == 134 and rule_of(w)["lastError"] is None
    )
    assert cards.fake.off_session_charges[-1]["payment_method"] == new_card
    assert rule_of(wallet)["lastError"] is None

    # Declined again, then the rule is set again: it tries once more, at once (low already).
    cards.fake.refuse_charges = "card_declined"
    await cards.consume(90)  # 44 left
    await cards.settled(lambda w: rule_of(w)["lastError"] is not None)
    await cards.consume(1)
    await cards.quiet()
    assert len(cards.fake.off_session_charges) == 3
    cards.fake.refuse_charges = None
    rule = await cards.rule(offer, threshold=50)
    assert rule["lastError"] is None and rule["lastOrderId"] is not None
    assert await cards.tokens() == 143
    assert len(cards.fake.off_session_charges) == 4


async def test_a_group_emptied_while_its_card_was_refused_is_refilled_by_a_refused_debit(
    cards: CardShop,
) -> None:
    """An empty group makes no more movements (its debits are refused and write nothing),
    so the refused debits themselves ask for the top-up once a new card may succeed."""
    await declined(cards, granted=60, spent=20)
    await cards.consume(40)  # empty now; the refused card is not tried again
    refused = await cards.consume(1)
    assert refused["errors"][0]["extensions"]["code"] == "INSUFFICIENT_TOKENS"
    await cards.quiet()
    assert len(cards.fake.off_session_charges) == 1

    cards.fake.refuse_charges = None
    new_card = await cards.save_card(last4="1881")
    await cards.quiet()
    assert len(cards.fake.off_session_charges) == 1  # saving a card charges nothing by itself
    refused = await cards.consume(1, api=cards.apis[1])  # the other instance hears of it too
    assert refused["errors"][0]["extensions"]["code"] == "INSUFFICIENT_TOKENS"
    await cards.settled(lambda w: w["balance"]["tokens"] == 100 and rule_of(w)["lastError"] is None)
    assert [c["payment_method"] for c in cards.fake.off_session_charges[1:]] == [new_card]
    for _ in range(3):  # refused debits of a group above its threshold buy nothing
        assert (await cards.consume(500))["errors"][0]["extensions"]["code"] == (
            "INSUFFICIENT_TOKENS"
        )
    await cards.quiet()
    assert len(cards.fake.off_session_charges) == 2
    assert await cards.tokens() == 100


async def test_authentication_required_pauses_the_rule_with_that_reason(cards: CardShop) -> None:
    offer = await cards.offer(tokens=100)
    await cards.grant(100)
    await cards.save_card()
    await cards.rule(offer, threshold=50)
    cards.fake.refuse_charges = "authentication_required"
    await cards.consume(60)
    wallet = await cards.settled(lambda w: rule_of(w)["lastError"] is not None)
    assert rule_of(wallet)["lastError"].startswith("authentication_required: ")
    await cards.consume(1)
    await cards.quiet()
    assert len(cards.fake.off_session_charges) == 1
    orders = await cards.api.data("query { wallet { orders { status } } }", as_=ALICE)
    assert orders["wallet"]["orders"] == [{"status": "REFUSED"}]


async def test_the_monthly_cap_stops_charges_until_next_month(
    cards: CardShop, clock: FakeClock
) -> None:
    offer = await cards.offer(tokens=10)
    await cards.grant(30)
    await cards.save_card()
    await cards.rule(offer, threshold=5, maxPerMonth=2)
    for charges in (1, 2):
        await cards.consume(10 if charges > 1 else 25)  # 5 left, topped up to 15
        await cards.settled(lambda w: w["balance"]["tokens"] == 15)
        assert len(cards.fake.off_session_charges) == charges
    await cards.consume(10)  # 5 left: a third top-up this month would pass the cap
    wallet = await cards.settled(lambda w: rule_of(w)["lastError"] is not None)
    assert rule_of(wallet)["lastError"] == "the cap of 2 top-ups a month is reached"
    assert len(cards.fake.off_session_charges) == 2 and wallet["balance"]["tokens"] == 5

    clock.advance(days=31)
    await cards.consume(1)  # 4 left, topped up to 14
    await cards.settled(lambda w: w["balance"]["tokens"] == 14 and not rule_of(w)["lastError"])
    assert len(cards.fake.off_session_charges) == 3


async def test_without_a_saved_card_the_rule_says_so_and_charges_nothing(cards: CardShop) -> None:
    offer = await cards.offer()
    await cards.grant(100)
    await cards.rule(offer, threshold=50)
    await cards.consume(60)
    wallet = await cards.settled(lambda w: rule_of(w)["lastError"] is not None)
    assert rule_of(wallet)["lastError"] == "no saved card: save one with setupPaymentMethod"
    assert wallet["paymentMethods"] == [] and cards.fake.off_session_charges == []


async def test_bad_rules_are_refused_and_change_nothing(cards: CardShop) -> None:
    offer = await cards.offer(group="chat")
    elsewhere = await cards.offer(group="images")
    in_euros = await cards.offer(prices=[{"amount": "4.99", "currency": "EUR"}])
    two_at_most = await cards.offer(quantityLimit=2)
    base = {"offerGroup": "chat", "offerId": offer, "threshold": 20}
    for bad, code in (
        ({"offerId": elsewhere}, "BAD_USER_INPUT"),
        ({"offerId": in_euros}, "BAD_USER_INPUT"),  # not sold in the service's currency
        ({"offerId": two_at_most, "quantity": 3}, "QUANTITY_LIMIT"),
        ({"threshold": -1}, "BAD_USER_INPUT"),
        ({"maxPerMonth": 0}, "BAD_USER_INPUT"),
        ({"maxPerMonth": 101}, "BAD_USER_INPUT"),
        ({"quantity": 0}, "BAD_USER_INPUT"),
        ({"offerId": "000000000000000000000000"}, "NOT_FOUND"),
        ({"userId": "bob"}, "FORBIDDEN"),
    ):
        assert await cards.api.error_code(RULE, {"input": {**base, **bad}}, as_=ALICE) == code
    assert (await cards.wallet())["autoTopUps"] == []
    # A back end sets a user's rule.
    service = token("billing", Role.SERVICE, at=START)
    made = await cards.api.data(RULE, {"input": {**base, "userId": "alice"}}, as_=service)
    assert made["setAutoTopUp"]["threshold"] == 20
    assert rule_of(await cards.wallet())["threshold"] == 20
    assert await cards.api.error_code(SETUP) == "UNAUTHENTICATED"


@asynccontextmanager
async def a_charge_left_unanswered(
    fake: FakeStripe, api_base: str, clock: FakeClock, database: AsyncDatabase[Any]
) -> AsyncIterator[Services]:
    """Stripe charges alice's card for her rule, then goes down before answering: the
    attempt stays open, and nothing else is charged meanwhile. Yields the services."""
    stripe = StripePaymentClient(
        secret_key=SECRET_KEY,
        webhook_secret=WEBHOOK_SECRET,
        api_base=api_base,
        max_network_retries=0,
    )
    services = build_services(
        database=database, payments=stripe, clock=clock, default_currency="USD"
    )
    try:
        offer = await make_offer(services, offer_group="chat", token_count=100)
        customer = await services.customers.customer(user_id="alice")
        fake.save_card(customer)
        fake.lose_next_charge_answer = True
        # No balance yet: setting the rule tops up at once, and the answer is lost.
        rule = await services.top_ups.set_rule(
            user_id="alice", offer_group="chat", offer_id=offer.id, threshold=50, set_by="alice"
        )
        assert len(fake.off_session_charges) == 1
        [attempt] = await TopUpAttemptDocument.find().to_list()
        assert attempt.open and attempt.card_id == fake.off_session_charges[0]["payment_method"]
        assert rule.last_order_id == str(attempt.id)  # recorded before the charge
        fake.down = False
        tries = [services.top_ups.top_up(user_id="alice", offer_group="chat") for _ in range(5)]
        assert await asyncio.gather(*tries) == [None] * 5  # in flight: nothing more is charged
        assert await services.top_ups.resume_stale() == Swept()
        yield services
    finally:
        await stripe.close()


async def assert_charged_once(fake: FakeStripe, services: Services) -> None:
    """Stripe replayed the first charge for the resumed attempt: one charge, its tokens."""
    assert len(fake.off_session_charges) == 1
    balance = await services.wallets.balance(user_id="alice", offer_group="chat")
    assert balance is not None and balance.tokens == 100
    [attempt] = await TopUpAttemptDocument.find().to_list()
    assert (attempt.open, attempt.charged, attempt.outcome) == (False, True, "paid")


async def test_a_charge_whose_answer_was_lost_is_resumed_and_charges_once(
    fake_stripe: tuple[FakeStripe, str], clock: FakeClock, database: AsyncDatabase[Any]
) -> None:
    """The sweep carries a stale attempt on with the same card, amount and key, so Stripe
    answers with the first charge."""
    fake, api_base = fake_stripe
    async with a_charge_left_unanswered(fake, api_base, clock, database) as services:
        clock.advance(minutes=11)
        assert await services.top_ups.resume_stale() == Swept(done=1)
        await assert_charged_once(fake, services)
        assert await services.top_ups.resume_stale() == Swept()


async def test_usercredits_expire_resumes_a_stale_top_up_as_the_server_sweep_does(
    fake_stripe: tuple[FakeStripe, str],
    clock: FakeClock,
    database_uri: str,
    database_name: str,
    database: AsyncDatabase[Any],
) -> None:
    """A deployment that turns the built-in sweep off runs `usercredits expire` from cron:
    it runs the same sweep, top-ups included (the attempt is stale on the wall clock)."""
    fake, api_base = fake_stripe
    async with a_charge_left_unanswered(fake, api_base, clock, database) as services:
        stripe = {
            f"USERCREDITS_{name.upper()}": value
            for name, value in server_settings(api_base).items()
        }
        code, out, errors = await run_cli(
            "expire", env=serve_env(database_uri, database_name, **stripe)
        )
        assert code == 0, errors
        assert "top_ups=Swept(done=1, skipped=0)" in out
        await assert_charged_once(fake, services)


async def test_instances_racing_on_one_low_balance_charge_once(
    fake_stripe: tuple[FakeStripe, str], clock: FakeClock, database: AsyncDatabase[Any]
) -> None:
    """Many callers, as several processes would be, judging the same low balance at once
    while charges succeed at once: the claim and the checks after it make one charge."""
    fake, api_base = fake_stripe
    clients = [
        StripePaymentClient(secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET, api_base=api_base)
        for _ in range(2)
    ]
    try:
        instances = [
            build_services(database=database, payments=c, clock=clock, default_currency="USD")
            for c in clients
        ]
        offer = await make_offer(instances[0], offer_group="chat", token_count=100)
        fake.save_card(await instances[0].customers.customer(user_id="alice"))
        await instances[0].wallets.grant(
            user_id="alice", offer_group="chat", tokens=100, idempotency_key="g"
        )
        await instances[0].top_ups.set_rule(
            user_id="alice", offer_group="chat", offer_id=offer.id, threshold=50, set_by="alice"
        )
        await instances[0].wallets.consume(
            user_id="alice", offer_group="chat", tokens=60, idempotency_key="d"
        )
        for _ in range(3):
            await asyncio.gather(
                *(
                    instances[i % 2].top_ups.top_up(user_id="alice", offer_group="chat")
                    for i in range(20)
                )
            )
        assert len(fake.off_session_charges) == 1
        balance = await instances[0].wallets.balance(user_id="alice", offer_group="chat")
        assert balance is not None and balance.tokens == 140
    finally:
        for client in clients:
            await client.close()


async def test_a_processing_top_up_that_fails_blocks_the_card(cards: CardShop) -> None:
    offer = await cards.offer(tokens=100)
    await cards.grant(100)
    await cards.save_card()
    await cards.rule(offer, threshold=50)
    cards.fake.process_charges = True
    await cards.consume(60)
    # The rule names the attempt's order before the charge is made: wait for the charge.
    await cards.settled(
        lambda w: rule_of(w)["lastOrderId"] is not None and bool(cards.fake.off_session_charges)
    )
    [charge] = cards.fake.off_session_charges
    cards.fake.decline(charge)
    assert (await cards.deliver(event("payment_intent.payment_failed", charge)))[0] == 200
    await cards.consume(1)  # the settled attempt is closed and its refusal recorded
    wallet = await cards.settled(lambda w: rule_of(w)["lastError"] is not None)
    assert rule_of(wallet)["lastError"] == "refused: Your card was declined."
    cards.fake.process_charges = False
    await cards.consume(1)
    await cards.quiet()
    assert len(cards.fake.off_session_charges) == 1 and await cards.tokens() == 38


async def test_in_the_sandbox_a_saved_test_card_tops_up(
    start_server: StartServer, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    api = Api(http, f"{await start_server(clock=clock)}/graphql")  # the tokens' clock
    cards = CardShop([api], FakeStripe())
    offer = await cards.offer(tokens=100)
    await cards.grant(100)
    assert (await api.data(SETUP, as_=ALICE))["setupPaymentMethod"].startswith("sandbox_seti_")
    wallet = await cards.wallet()
    assert [(m["brand"], m["last4"]) for m in wallet["paymentMethods"]] == [("visa", "4242")]
    await cards.rule(offer, threshold=50)
    await cards.consume(60)
    await cards.settled(lambda w: w["balance"]["tokens"] == 140)


async def test_top_ups_tell_the_back_end_with_topup_webhooks(cards: CardShop) -> None:
    offer = await cards.offer(tokens=100)
    await cards.grant(100)
    await cards.save_card()
    async with running_receiver() as receiver:
        await cards.api.data(
            """mutation($input: WebhookEndpointInput!) {
              createWebhookEndpoint(input: $input) { secret } }""",
            {"input": {"url": receiver.url, "eventTypes": ["topup.succeeded", "topup.failed"]}},
            as_=ADMIN,
        )
        await cards.rule(offer, threshold=50)
        cards.fake.refuse_charges = "card_declined"
        await cards.consume(60)
        await receiver.wait_for(1)
        cards.fake.refuse_charges = None
        await cards.save_card(last4="1881")
        await cards.consume(1)
        await receiver.wait_for(2)
    assert receiver.types() == ["topup.failed", "topup.succeeded"]
    failed, succeeded = (r.event["data"] for r in receiver.accepted)
    assert (failed["userId"], failed["offerGroup"], failed["status"]) == (
        "alice",
        "chat",
        "REFUSED",
    )
    assert (succeeded["status"], succeeded["tokens"]) == ("PAID", 100)
    assert succeeded["orderId"] == rule_of(await cards.wallet())["lastOrderId"]


CAPPED_RULE = """mutation($input: AutoTopUpInput!) { setAutoTopUp(input: $input) {
  quantity threshold setBy maxAmountPerMonth { amount currency minorUnits } } }"""
RULES = """query { wallet { autoTopUps { lastAttemptAt lastOrderId lastError }
  balance(offerGroup: "chat") { tokens } } }"""


async def test_what_a_rule_may_charge_is_bounded_whoever_sets_it(cards: CardShop) -> None:
    """A service key may set any user's rule, but not one that makes every debit a charge
    (a threshold at or above what one top-up buys), nor one that charges more than 500 USD a
    top-up or 1000 USD a month (the service's caps), or more a month than the rule's own
    cap; a price raised after the rule was set is refused at the charge; the rule records
    who set it."""
    service = token("billing", Role.SERVICE, at=START)
    offer = await cards.offer(tokens=100, prices=[{"amount": "19.99", "currency": "USD"}])
    await cards.grant(100)
    await cards.save_card()
    base = {"userId": "alice", "offerGroup": "chat", "offerId": offer, "threshold": 20}

    def cap(amount: str, currency: str = "USD") -> dict[str, Any]:
        return {"maxAmountPerMonth": {"amount": amount, "currency": currency}}

    for bad in (
        {"quantity": 1000, "threshold": 2**31 - 1, "maxPerMonth": 100},
        {"threshold": 100},  # what one top-up buys: it would not lift an empty group above
        {"quantity": 1000},  # 19,990.00 USD a top-up
        {"quantity": 26},  # 519.74 USD a top-up
        {"quantity": 2, **cap("30.00")},  # 39.98 USD a top-up, over the rule's own cap
        cap("1000.01"),  # over the service's cap
        cap("0"),
        cap("10", "EUR"),  # top-ups are charged in USD
    ):
        answer = await cards.api.call(CAPPED_RULE, {"input": {**base, **bad}}, as_=service)
        [error] = answer["errors"]  # refused by the rule, not by the schema's validation
        assert (error["path"], error["extensions"]["code"]) == (
            ["setAutoTopUp"],
            "BAD_USER_INPUT",
        ), bad
    assert (await cards.wallet())["autoTopUps"] == [] and cards.fake.off_session_charges == []

    made = await cards.api.data(CAPPED_RULE, {"input": {**base, **cap("50")}}, as_=service)
    assert made["setAutoTopUp"] == {
        "quantity": 1,
        "threshold": 20,
        "setBy": "billing",
        "maxAmountPerMonth": {"amount": "50.00", "currency": "USD", "minorUnits": 5000},
    }
    for charges in (1, 2):  # 19.99, then 39.98 USD this month
        await cards.consume(80 if charges == 1 else 100)  # 20 left, topped up to 120
        await cards.settled(lambda w: w["balance"]["tokens"] == 120)
        assert len(cards.fake.off_session_charges) == charges
    await cards.consume(100)  # a third (59.97 USD) would pass the rule's cap
    wallet = await cards.settled(lambda w: rule_of(w)["lastError"] is not None)
    assert rule_of(wallet)["lastError"] == (
        "the cap of 50.00 USD of top-ups a month is reached (39.98 charged, the next costs 19.99)"
    )
    assert len(cards.fake.off_session_charges) == 2 and wallet["balance"]["tokens"] == 20

    again = await cards.api.data(CAPPED_RULE, {"input": base}, as_=ALICE)  # by alice now
    assert again["setAutoTopUp"]["setBy"] == "alice"
    assert again["setAutoTopUp"]["maxAmountPerMonth"] is None  # the service's caps apply
    await cards.settled(lambda w: w["balance"]["tokens"] == 120)
    # The price is raised past the cap per top-up after the rule was set: no charge.
    await cards.offer(tokens=100, id=offer, prices=[{"amount": "600.00", "currency": "USD"}])
    await cards.consume(100)
    wallet = await cards.settled(lambda w: rule_of(w)["lastError"] is not None)
    assert rule_of(wallet)["lastError"] == (
        "a top-up costs 600.00 USD, more than the 500.00 USD one may charge"
    )
    assert len(cards.fake.off_session_charges) == 3


async def test_a_top_up_whose_answers_were_all_lost_is_credited_by_its_signed_event(
    cards: CardShop,
) -> None:
    """Stripe charges the card and then answers nothing more; its signed
    payment_intent.succeeded names the top-up's order in its metadata: the tokens are
    credited at once, once, and the rule shows the attempt."""
    offer = await cards.offer(tokens=100)
    await cards.grant(100)
    await cards.save_card()
    await cards.rule(offer, threshold=50)
    cards.fake.lose_next_charge_answer = True  # Stripe is down from the charge on
    await cards.consume(60)

    async def rule() -> dict[str, Any]:
        wallet = (await cards.api.data(RULES, as_=ALICE))["wallet"]
        found: dict[str, Any] = rule_of(wallet)
        found["tokens"] = wallet["balance"]["tokens"]
        return found

    async with asyncio.timeout(WAIT_SECONDS):
        while True:  # the wallet's cards cannot be read from Stripe now: watch the fake
            if cards.fake.off_session_charges:
                break
            await asyncio.sleep(0.05)
    [charge] = cards.fake.off_session_charges
    assert cards.fake.down and (await rule())["tokens"] == 40
    body = event("payment_intent.succeeded", charge)
    assert await cards.deliver(body) == (200, {"received": True, "outcome": "paid"})
    shown = await rule()
    assert shown["tokens"] == 140 and shown["lastError"] is None
    assert shown["lastAttemptAt"] is not None
    assert shown["lastOrderId"] == charge["metadata"]["order_id"]

    assert (await cards.deliver(body))[1]["outcome"] == "duplicate"
    again = body.replace(b'"evt_', b'"evt_again_', 1)  # the same payment in another event
    assert (await cards.deliver(again))[1]["outcome"] == "paid"
    assert (await rule())["tokens"] == 140
    credits = await LedgerEntryDocument.find({"user_id": "alice", "reason": "purchase"}).to_list()
    assert [c.order_id for c in credits] == [shown["lastOrderId"]]
    assert len(cards.fake.off_session_charges) == 1


async def test_the_services_caps_on_top_ups_are_settings(
    http: aiohttp.ClientSession,
    start_server: StartServer,
    fake_stripe: tuple[FakeStripe, str],
    clock: FakeClock,
) -> None:
    """USERCREDITS_TOP_UP_MAX_AMOUNT lowers what one top-up may charge: a rule buying 19.99
    USD is refused by a service capped at 10 USD and taken by one at the default."""
    fake, api_base = fake_stripe
    capped = await start_server(clock=clock, top_up_max_amount="10", **server_settings(api_base))
    cards = CardShop([Api(http, f"{capped}/graphql")], fake, http)
    offer = await cards.offer(tokens=100, prices=[{"amount": "19.99", "currency": "USD"}])
    await cards.save_card()
    rule = {"offerGroup": "chat", "offerId": offer, "threshold": 20}
    answer = await cards.api.call(CAPPED_RULE, {"input": rule}, as_=ALICE)
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "10.00 USD" in error["message"]
    default = await start_server(clock=clock, **server_settings(api_base))
    made = await Api(http, f"{default}/graphql").data(CAPPED_RULE, {"input": rule}, as_=ALICE)
    assert made["setAutoTopUp"]["threshold"] == 20
