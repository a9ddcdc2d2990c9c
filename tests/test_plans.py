"""Renewing plans end to end: the real `stripe` SDK against the fake Stripe server (prices,
subscriptions, invoices and their events, in the SDK's API version's shapes), signed
webhooks over HTTP to two real server instances, the sweep, a live subscriber, a webhook
receiver, and the sandbox."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from tests.api import Api, TransportWsClient, token, ws_url
from tests.conftest import StartServer
from tests.fake_stripe import FakeStripe, event, server_settings, sign
from tests.receiver import running_receiver
from tests.support import START, FakeClock
from tests.waits import swept
from usercredits.models import LedgerEntryDocument, PlanDocument
from usercredits.services.identity.access import Role
from usercredits.services.payments import SandboxPaymentClient

# Issued on the servers' FakeClock, which these tests move on by months.
ADMIN = token("admin-1", Role.ADMIN, at=START, ttl=timedelta(days=365))
ALICE = token("alice", at=START, ttl=timedelta(days=365))
BOB = token("bob", at=START, ttl=timedelta(days=365))
WAIT_SECONDS = 10.0

OFFER = "mutation($input: OfferInput!) { upsertOffer(input: $input) { id } }"
PLAN_FIELDS = """id userId offerId offerGroup quantity status currentPeriodStart currentPeriodEnd
  cancelAtPeriodEnd orders { id status tokenCount starts expires total { minorUnits } }"""
SUBSCRIBE = f"""mutation($input: SubscribeInput!) {{ subscribe(input: $input) {{
  paymentClientSecret plan {{ {PLAN_FIELDS} }} }} }}"""
CANCEL = f"""mutation($id: ID!, $end: Boolean) {{ cancelPlan(id: $id, atPeriodEnd: $end) {{
  {PLAN_FIELDS} }} }}"""
RESUME = f"mutation($id: ID!) {{ resumePlan(id: $id) {{ {PLAN_FIELDS} }} }}"
REFRESH = f"mutation($id: ID!) {{ refreshPlan(id: $id) {{ {PLAN_FIELDS} }} }}"
PLANS = f"query {{ wallet {{ plans {{ {PLAN_FIELDS} }} }} }}"


def stamp(unix: int) -> str:
    """A Stripe time as the API shows a DateTime."""
    return datetime.fromtimestamp(unix, UTC).isoformat()


class Subscriptions:
    """Server instances on one fake Stripe (sharing the test's clock), and what a test
    does through them."""

    def __init__(self, apis: list[Api], fake: FakeStripe, http: aiohttp.ClientSession) -> None:
        self.apis, self.fake, self.http = apis, fake, http
        self.api = apis[0]

    async def offer(self, cycle: str = "MONTHLY", kind: str = "SUBSCRIPTION", **more: Any) -> str:
        data = await self.api.data(
            OFFER,
            {
                "input": {
                    "name": "Pro monthly",
                    "kind": kind,
                    "offerGroup": "pro",
                    "tokenCount": 100,
                    "prices": [{"amount": "9.99", "currency": "USD"}],
                    "cycle": cycle,
                    **more,
                }
            },
            as_=ADMIN,
        )
        offer_id: str = data["upsertOffer"]["id"]
        return offer_id

    async def subscribe(self, offer_id: str, as_: str = ALICE, **more: Any) -> dict[str, Any]:
        data = await self.api.data(SUBSCRIBE, {"input": {"offerId": offer_id, **more}}, as_=as_)
        subscribed: dict[str, Any] = data["subscribe"]
        return subscribed

    async def deliver(self, body: bytes, api: Api | None = None) -> str:
        """A signed Stripe webhook; the outcome the server reports."""
        base = (api or self.api).url.removesuffix("/graphql")
        headers = {"Stripe-Signature": sign(body), "Content-Type": "application/json"}
        async with self.http.post(f"{base}/webhooks/stripe", data=body, headers=headers) as r:
            answer = await r.json()
            assert r.status == 200, answer
            outcome: str = answer["outcome"]
            return outcome

    async def plan(self, mutation: str = REFRESH, **variables: Any) -> dict[str, Any]:
        data = await self.api.data(mutation, variables, as_=ALICE)
        plan: dict[str, Any] = next(iter(data.values()))
        return plan

    async def plans(self) -> list[dict[str, Any]]:
        plans: list[dict[str, Any]] = (await self.api.data(PLANS, as_=ALICE))["wallet"]["plans"]
        return plans

    async def tokens(self) -> int:
        """Alice's spendable tokens in the plan's group."""
        query = 'query { wallet { balance(offerGroup: "pro") { tokens } } }'
        balance = (await self.api.data(query, as_=ALICE))["wallet"]["balance"]
        return 0 if balance is None else int(balance["tokens"])

    async def credits(self) -> list[int]:
        """The tokens of each purchase credit in alice's ledger, oldest first."""
        entries = await LedgerEntryDocument.find(
            {"user_id": "alice", "reason": "purchase"}
        ).to_list()
        return [e.tokens for e in sorted(entries, key=lambda e: e.seq)]


@pytest.fixture
async def subs(
    http: aiohttp.ClientSession,
    start_server: StartServer,
    fake_stripe: tuple[FakeStripe, str],
    clock: FakeClock,
) -> Subscriptions:
    fake, api_base = fake_stripe
    fake.clock = clock
    bases = [await start_server(clock=clock, **server_settings(api_base)) for _ in range(2)]
    return Subscriptions([Api(http, f"{base}/graphql") for base in bases], fake, http)


def period_of(subscription: dict[str, Any]) -> tuple[str, str]:
    [item] = subscription["items"]["data"]
    return stamp(item["current_period_start"]), stamp(item["current_period_end"])


async def test_a_plan_renews_three_periods_each_credited_for_its_period(
    subs: Subscriptions, clock: FakeClock
) -> None:
    offer = await subs.offer()
    subscribed = await subs.subscribe(offer, idempotencyKey="plan-1")
    plan = subscribed["plan"]
    assert (plan["status"], plan["orders"], plan["userId"]) == ("INCOMPLETE", [], "alice")
    subscription = subs.fake.subscription_of(plan["id"])
    assert subscribed["paymentClientSecret"] == subs.fake.latest_invoice(subscription)["secret"]
    [price] = subs.fake.prices.values()
    assert (price["unit_amount"], price["currency"], price["recurring"]) == (
        999,
        "usd",
        {"interval": "month", "interval_count": 1},
    )
    # A retry with the key is the same plan and the same payment to confirm.
    again = await subs.subscribe(offer, idempotencyKey="plan-1")
    assert again == subscribed and len(subs.fake.subscriptions) == 1

    periods = []
    for period in range(3):
        if period:
            clock.current = datetime.fromtimestamp(
                subscription["items"]["data"][0]["current_period_end"], UTC
            )
            assert await subs.deliver(subs.fake.renew(subscription)) == "active"
        periods.append(period_of(subscription))
        assert await subs.deliver(subs.fake.pay(subscription), subs.apis[period % 2]) == "active"
        plan = await subs.plan(REFRESH, id=plan["id"])
        assert plan["status"] == "ACTIVE"
        assert (plan["currentPeriodStart"], plan["currentPeriodEnd"]) == periods[-1]

    # Each period counted from the first one's start, as Stripe does.
    assert [start[:10] for start, _ in periods] == ["2026-01-31", "2026-02-28", "2026-03-31"]
    orders = plan["orders"]
    assert [(o["starts"], o["expires"]) for o in orders] == periods[::-1]  # newest first
    assert {(o["status"], o["tokenCount"], o["total"]["minorUnits"]) for o in orders} == {
        ("PAID", 100, 999)
    }
    assert await subs.credits() == [100, 100, 100]
    assert await subs.plans() == [plan]
    cancel_order = "mutation($id: ID!) { cancelOrder(id: $id) { status } }"
    code = await subs.api.error_code(cancel_order, {"id": orders[0]["id"]}, as_=ADMIN)
    assert code == "CONFLICT"

    # The latest period is refunded in the dashboard: its tokens are taken back.
    assert await subs.tokens() == 100  # the earlier periods have ended
    refund = FakeStripe.refund_charge(subs.fake.payment_of(subs.fake.latest_invoice(subscription)))
    assert await subs.deliver(event("charge.refunded", refund)) == "refunded"
    plan = await subs.plan(REFRESH, id=plan["id"])
    assert [o["status"] for o in plan["orders"]] == ["REFUNDED", "PAID", "PAID"]
    assert await subs.tokens() == 0
    # A second plan on the same offer and price reuses Stripe's price.
    await subs.subscribe(offer)
    assert len(subs.fake.prices) == 1 and len(subs.fake.subscriptions) == 2


async def test_a_failed_renewal_is_past_due_and_a_retry_credits_the_period_once(
    subs: Subscriptions, clock: FakeClock
) -> None:
    plan = (await subs.subscribe(await subs.offer()))["plan"]
    subscription = subs.fake.subscription_of(plan["id"])
    await subs.deliver(subs.fake.pay(subscription))
    await subs.deliver(subs.fake.renew(subscription))

    assert await subs.deliver(subs.fake.fail(subscription)) == "past_due"
    assert await subs.credits() == [100]  # a failed renewal credits nothing
    plan = await subs.plan(REFRESH, id=plan["id"])
    assert (plan["status"], len(plan["orders"])) == ("PAST_DUE", 1)

    paid = subs.fake.pay(subscription)  # Stripe's retry succeeds
    again = paid.replace(b'"evt_', b'"evt_again_', 1)  # the same invoice in another event
    outcomes = await asyncio.gather(
        subs.deliver(paid, subs.apis[0]), subs.deliver(again, subs.apis[1])
    )
    assert outcomes == ["active", "active"]
    assert await subs.deliver(paid) == "duplicate"
    assert await subs.deliver(subs.fake.prorate(subscription)) == "active"  # no period bought
    assert await subs.credits() == [100, 100]
    plan = await subs.plan(REFRESH, id=plan["id"])
    assert (plan["status"], len(plan["orders"])) == ("ACTIVE", 2)
    assert plan["orders"][0]["starts"] == period_of(subscription)[0]


async def test_cancel_at_period_end_resume_and_cancel_now(
    subs: Subscriptions, clock: FakeClock
) -> None:
    offer = await subs.offer()
    plan = (await subs.subscribe(offer))["plan"]
    subscription = subs.fake.subscription_of(plan["id"])
    await subs.deliver(subs.fake.pay(subscription))

    plan = await subs.plan(CANCEL, id=plan["id"])
    assert (plan["status"], plan["cancelAtPeriodEnd"]) == ("ACTIVE", True)
    assert subscription["cancel_at_period_end"] is True
    plan = await subs.plan(RESUME, id=plan["id"])
    assert plan["cancelAtPeriodEnd"] is False and subscription["cancel_at_period_end"] is False
    await subs.plan(CANCEL, id=plan["id"], end=True)

    # The period ends: Stripe ends the subscription instead of renewing it.
    assert await subs.deliver(subs.fake.renew(subscription)) == "canceled"
    plan = await subs.plan(REFRESH, id=plan["id"])
    assert (plan["status"], len(plan["orders"])) == ("CANCELED", 1)
    assert await subs.credits() == [100]
    code = await subs.api.error_code(RESUME, {"id": plan["id"]}, as_=ALICE)
    assert code == "CONFLICT"

    other = (await subs.subscribe(offer))["plan"]
    now = await subs.plan(CANCEL, id=other["id"], end=False)
    assert now["status"] == "CANCELED"
    assert subs.fake.subscription_of(other["id"])["status"] == "canceled"


async def test_events_applied_twice_late_or_out_of_order_converge(subs: Subscriptions) -> None:
    plan = (await subs.subscribe(await subs.offer()))["plan"]
    subscription = subs.fake.subscription_of(plan["id"])
    created = event("customer.subscription.created", dict(subscription))  # while incomplete
    paid = subs.fake.pay(subscription)
    updated = event("customer.subscription.updated", dict(subscription))  # while active

    assert await subs.deliver(paid) == "active"
    assert await subs.deliver(created) == "active"  # late: Stripe says active now
    ended = subs.fake.end(subscription)
    assert await subs.deliver(ended) == "canceled"
    assert await subs.deliver(updated) == "canceled"  # later still: CANCELED is final
    assert await subs.deliver(paid.replace(b'"evt_', b'"evt_late_', 1)) == "canceled"
    assert await subs.credits() == [100]
    stored = await PlanDocument.find().to_list()
    assert [[s.status.name for s in p.history] for p in stored] == [
        ["INCOMPLETE", "ACTIVE", "CANCELED"]
    ]
    assert await subs.deliver(event("customer.subscription.updated", {"id": "sub_x"})) == (
        "unknown subscription"
    )


async def test_a_missed_renewal_is_found_by_refresh_and_by_the_sweep(
    http: aiohttp.ClientSession,
    start_server: StartServer,
    fake_stripe: tuple[FakeStripe, str],
    clock: FakeClock,
) -> None:
    fake, api_base = fake_stripe
    fake.clock = clock
    base = await start_server(clock=clock, sweep_interval_seconds=1, **server_settings(api_base))
    subs = Subscriptions([Api(http, f"{base}/graphql")], fake, http)
    plan = (await subs.subscribe(await subs.offer()))["plan"]
    subscription = fake.subscription_of(plan["id"])
    fake.pay(subscription)  # no webhook comes
    plan = await subs.plan(REFRESH, id=plan["id"])
    assert (plan["status"], await subs.credits()) == ("ACTIVE", [100])
    plan_start = plan["currentPeriodStart"]

    end = datetime.fromtimestamp(subscription["items"]["data"][0]["current_period_end"], UTC)
    clock.current = end
    fake.renew(subscription)
    fake.pay(subscription)  # renewed and paid; still no webhook
    await swept(http, base)
    assert await subs.credits() == [100]  # the sweep waits for news first
    clock.current = end + timedelta(hours=2)
    # The sweep credits the period, then moves the plan to it: wait for both.
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            [plan] = await subs.plans()
            if plan["currentPeriodStart"] == period_of(subscription)[0]:
                break
            await asyncio.sleep(0.05)
    assert await subs.credits() == [100, 100]
    assert plan["currentPeriodEnd"] == period_of(subscription)[1]
    assert [o["starts"] for o in plan["orders"]] == [period_of(subscription)[0], plan_start]

    # The next renewal is heard of, its payment is not: the sweep asks within the hour,
    # while the period is still of use.
    clock.current = datetime.fromisoformat(plan["currentPeriodEnd"])
    assert await subs.deliver(fake.renew(subscription)) == "active"
    fake.pay(subscription)
    clock.advance(hours=1, seconds=1)
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if await subs.credits() == [100, 100, 100]:
                break
            await asyncio.sleep(0.05)


async def test_a_subscription_stripe_did_not_make_is_made_by_a_retry_never_twice(
    subs: Subscriptions, clock: FakeClock
) -> None:
    offer = await subs.offer()
    subs.fake.down = True
    for key in ("a", "b", "e"):
        given = {"input": {"offerId": offer, "idempotencyKey": key}}
        assert await subs.api.error_code(SUBSCRIBE, given, as_=ALICE) == "PAYMENT_FAILED"
    subs.fake.down = False
    unmade = await subs.plans()
    assert [(p["status"], p["currentPeriodEnd"]) for p in unmade] == [("INCOMPLETE", None)] * 3
    e, b, a = (p["id"] for p in unmade)  # newest first

    retried = await subs.subscribe(offer, idempotencyKey="a")  # soon after: made now
    assert retried["plan"]["id"] == a and retried["paymentClientSecret"]
    await subs.plan(CANCEL, id=b)  # canceled before it was made
    canceled = await subs.subscribe(offer, idempotencyKey="b")  # then retried: not made
    assert (canceled["plan"]["status"], canceled["paymentClientSecret"]) == ("CANCELED", None)
    assert len(subs.fake.subscriptions) == 1

    # Made at Stripe, its answer lost, the plan canceled: the subscription is canceled too.
    subs.fake.lose_next_subscription_answer = True
    given = {"input": {"offerId": offer, "idempotencyKey": "c"}}
    assert await subs.api.error_code(SUBSCRIBE, given, as_=ALICE) == "PAYMENT_FAILED"
    subs.fake.down = False
    [lost] = [p for p in await subs.plans() if p["id"] not in {a, b, e}]
    assert (await subs.plan(CANCEL, id=lost["id"]))["status"] == "CANCELED"
    stray = subs.fake.subscription_of(lost["id"])
    created = event("customer.subscription.created", dict(stray))
    assert await subs.deliver(created) == "canceled"
    assert stray["status"] == "canceled"

    clock.advance(hours=13)  # too late for a retry to make one: Stripe's key may be gone
    late = await subs.subscribe(offer, idempotencyKey="e")
    assert (late["plan"]["status"], late["paymentClientSecret"]) == ("INCOMPLETE", None)
    assert len(subs.fake.subscriptions) == 2
    clock.advance(hours=12)  # a day on: its refresh gives it up
    given_up = await subs.plan(REFRESH, id=e)
    assert given_up["status"] == "CANCELED"
    stored = await PlanDocument.get(ObjectId(e))
    assert stored is not None and stored.history[-1].message == "its subscription was never made"
    made = await subs.plan(REFRESH, id=a)  # it was made: Stripe ends it when unpaid, not us
    assert made["status"] == "INCOMPLETE"
    assert await subs.credits() == []


async def test_a_refresh_pages_through_every_period_it_missed(
    subs: Subscriptions, clock: FakeClock
) -> None:
    plan = (await subs.subscribe(await subs.offer(cycle="DAILY")))["plan"]
    subscription = subs.fake.subscription_of(plan["id"])
    await subs.deliver(subs.fake.pay(subscription))
    for _ in range(30):  # a month of daily renewals whose webhooks never came
        subs.fake.renew(subscription)
        subs.fake.pay(subscription)
    clock.current = datetime.fromisoformat(period_of(subscription)[0])
    subs.fake.page_size = 8

    plan = await subs.plan(REFRESH, id=plan["id"])
    assert len(plan["orders"]) == 31 and await subs.credits() == [100] * 31
    assert plan["currentPeriodStart"] == period_of(subscription)[0]
    assert subs.fake.invoice_pages == 4  # 31 paid invoices, 8 a page
    subs.fake.invoice_pages = 0
    await subs.plan(REFRESH, id=plan["id"])  # from the latest period credited on
    assert subs.fake.invoice_pages == 1 and await subs.credits() == [100] * 31


async def test_subscribers_and_webhook_receivers_hear_of_plans(
    subs: Subscriptions, http: aiohttp.ClientSession
) -> None:
    plan = (await subs.subscribe(await subs.offer()))["plan"]
    subscription = subs.fake.subscription_of(plan["id"])
    client = await TransportWsClient.connect(
        http,
        ws_url(subs.apis[1].url.removesuffix("/graphql")),
        {"authorization": f"Bearer {ALICE}"},
    )
    await client.subscribe("p", "subscription { planUpdated { id status cancelAtPeriodEnd } }")
    async with running_receiver() as receiver:
        await subs.api.data(
            """mutation($input: WebhookEndpointInput!) {
              createWebhookEndpoint(input: $input) { secret } }""",
            {"input": {"url": receiver.url, "eventTypes": ["plan.renewed", "plan.past_due",
                                                           "plan.canceled"]}},
            as_=ADMIN,
        )  # fmt: skip
        await subs.deliver(subs.fake.pay(subscription))
        pushed = [(await client.receive())["payload"]["data"]["planUpdated"]]
        while pushed[-1]["status"] != "ACTIVE":  # the write that made it may come first
            pushed.append((await client.receive())["payload"]["data"]["planUpdated"])
        assert {(p["id"], p["status"]) for p in pushed[:-1]} <= {(plan["id"], "INCOMPLETE")}
        assert pushed[-1] == {"id": plan["id"], "status": "ACTIVE", "cancelAtPeriodEnd": False}
        await subs.deliver(subs.fake.renew(subscription))
        await subs.deliver(subs.fake.fail(subscription))
        await subs.deliver(subs.fake.end(subscription))
        await receiver.wait_for(3)
        await client.close()
    # Deliveries go out several at a time (by any instance's dispatcher), so they may
    # arrive in any order; each says where it stands (`sequence`).
    assert sorted(receiver.types()) == ["plan.canceled", "plan.past_due", "plan.renewed"]
    by_type = {r.event["type"]: r.event["data"] for r in receiver.accepted}
    renewed, past_due, canceled = (
        by_type[f"plan.{t}"] for t in ("renewed", "past_due", "canceled")
    )
    assert (renewed["planId"], renewed["tokens"], renewed["status"]) == (plan["id"], 100, "PAID")
    assert (past_due["planId"], past_due["status"]) == (plan["id"], "PAST_DUE")
    assert (canceled["status"], canceled["sequence"]) == ("CANCELED", 4)


async def test_the_sandbox_renews_plans_by_its_clock(
    start_server: StartServer,
    sandbox: SandboxPaymentClient,
    clock: FakeClock,
    http: aiohttp.ClientSession,
) -> None:
    sandbox.clock = clock
    base = await start_server(clock=clock)
    subs = Subscriptions([Api(http, f"{base}/graphql")], FakeStripe(), http)
    offer = await subs.offer(cycle="CUSTOM", customCycleSeconds=3 * 86_400)
    subscribed = await subs.subscribe(offer)
    plan = subscribed["plan"]
    assert subscribed["paymentClientSecret"] is None  # nothing to confirm: paid at once
    assert (plan["status"], len(plan["orders"])) == ("ACTIVE", 1)
    start = datetime.fromisoformat(plan["currentPeriodStart"])
    assert datetime.fromisoformat(plan["currentPeriodEnd"]) - start == timedelta(days=3)

    clock.advance(days=7)  # two more periods have started
    plan = await subs.plan(REFRESH, id=plan["id"])
    assert [o["starts"] for o in plan["orders"]] == [
        (start + timedelta(days=d)).isoformat() for d in (6, 3, 0)
    ]
    plan = await subs.plan(CANCEL, id=plan["id"], end=False)
    assert plan["status"] == "CANCELED"
    clock.advance(days=7)
    assert len((await subs.plan(REFRESH, id=plan["id"]))["orders"]) == 3

    clock.current = START  # Jan 31: renewals counted from it, as Stripe counts them
    monthly = (await subs.subscribe(await subs.offer()))["plan"]
    clock.current = START + timedelta(days=60)
    renewed = await subs.plan(REFRESH, id=monthly["id"])
    assert [o["starts"][:10] for o in renewed["orders"]] == [
        "2026-03-31",
        "2026-02-28",
        "2026-01-31",
    ]


async def test_bad_requests_are_refused_and_change_nothing(subs: Subscriptions) -> None:
    monthly = await subs.offer()
    pack = await subs.offer(kind="TOKENS")
    once = await subs.offer(cycle="ONCE")
    odd = await subs.offer(cycle="CUSTOM", customCycleSeconds=36 * 3600)
    refused = {
        "a token pack": ({"offerId": pack}, "BAD_USER_INPUT"),
        "a one-off": ({"offerId": once}, "BAD_USER_INPUT"),
        "a cycle in part days": ({"offerId": odd}, "BAD_USER_INPUT"),
        "no quantity": ({"offerId": monthly, "quantity": 0}, "BAD_USER_INPUT"),
        "another currency": ({"offerId": monthly, "currency": "EUR"}, "BAD_USER_INPUT"),
        "an unknown offer": ({"offerId": "0" * 24}, "NOT_FOUND"),
    }
    for what, (given, code) in refused.items():
        assert await subs.api.error_code(SUBSCRIBE, {"input": given}, as_=ALICE) == code, what
    assert await PlanDocument.find().count() == 0 and subs.fake.subscriptions == {}

    plan = (await subs.subscribe(monthly, idempotencyKey="k"))["plan"]
    for changed in ({"offerId": pack}, {"quantity": 2}, {"currency": "EUR"}):
        reused = {"input": {"offerId": monthly, "idempotencyKey": "k", **changed}}
        assert await subs.api.error_code(SUBSCRIBE, reused, as_=ALICE) == "CONFLICT", changed
    same = {"input": {"offerId": monthly, "idempotencyKey": "k", "currency": "usd"}}
    assert (await subs.api.data(SUBSCRIBE, same, as_=ALICE))["subscribe"]["plan"]["id"] == (
        plan["id"]
    )
    for mutation in (CANCEL, RESUME, REFRESH):  # bob cannot see alice's plan
        assert await subs.api.error_code(mutation, {"id": plan["id"]}, as_=BOB) == "NOT_FOUND"
    # A back end reads plans, an admin changes them.
    service = token("billing", Role.SERVICE, at=START)
    assert (await subs.api.data(REFRESH, {"id": plan["id"]}, as_=service))["refreshPlan"]
    assert await subs.api.error_code(CANCEL, {"id": plan["id"]}, as_=service) == "FORBIDDEN"
    assert subs.fake.subscription_of(plan["id"])["cancel_at_period_end"] is False
    for _ in range(4):  # five plans await their first payment: a sixth is refused
        await subs.subscribe(monthly)
    given = {"input": {"offerId": monthly}}
    assert await subs.api.error_code(SUBSCRIBE, given, as_=ALICE) == "QUANTITY_LIMIT"
    assert len(subs.fake.subscriptions) == 5
    admin_canceled = await subs.api.data(CANCEL, {"id": plan["id"], "end": False}, as_=ADMIN)
    assert admin_canceled["cancelPlan"]["status"] == "CANCELED"
    await subs.subscribe(monthly)  # room again
    buy = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { order { id } } }"""
    for key in ("invoice:in_1", "bundle:x:0", "top-up:y"):
        given = {"input": {"offerId": pack, "idempotencyKey": key}}
        assert await subs.api.error_code(buy, given, as_=ALICE) == "BAD_USER_INPUT", key


async def test_a_paid_invoice_is_credited_by_its_signed_event_while_stripe_answers_nothing(
    subs: Subscriptions,
) -> None:
    """invoice.paid names the plan in its subscription's metadata: its period is credited at
    once, though Stripe cannot be read for the subscription (the event is answered 503, so
    Stripe sends it again, which credits nothing more)."""
    plan = (await subs.subscribe(await subs.offer()))["plan"]
    paid = subs.fake.pay(subs.fake.subscription_of(plan["id"]))
    subs.fake.down = True
    headers = {"Stripe-Signature": sign(paid), "Content-Type": "application/json"}
    base = subs.api.url.removesuffix("/graphql")
    async with subs.http.post(f"{base}/webhooks/stripe", data=paid, headers=headers) as answer:
        assert answer.status == 503
    assert await subs.credits() == [100] and await subs.tokens() == 100

    subs.fake.down = False
    assert await subs.deliver(paid) == "active"
    assert await subs.credits() == [100]
    [shown] = await subs.plans()
    assert shown["status"] == "ACTIVE" and len(shown["orders"]) == 1
