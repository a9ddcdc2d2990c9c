"""Renewing plans: a SUBSCRIPTION offer bought through the payment provider's subscription,
which bills every cycle. Each paid invoice is an order that credits the plan's tokens for
exactly the invoice's period; the plan follows the subscription's status.

The provider is the source of truth: whatever reports a subscription (a webhook of any
type, a refresh, the sweep) reads it again from the provider and applies what it says; a
verified event brings only the invoice it is about, which is credited if it is paid. So
events applied twice, late or in any order converge to the same plan, and an invoice is
credited once whoever sees it first (its order is keyed by the invoice). CANCELED is
final; a plan's period never moves back.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from usercredits.models import PlanDocument
from usercredits.models.collections import Collection
from usercredits.services.catalogue.cycles import renewal_interval
from usercredits.services.catalogue.offers import Offers
from usercredits.services.clock import Clock, due_by
from usercredits.services.errors import (
    Conflict,
    Impossible,
    NotFound,
    PlanCanceled,
    QuantityLimit,
)
from usercredits.services.identity.access import Principal
from usercredits.services.ids import object_id
from usercredits.services.limits import InputLimits
from usercredits.services.money import Money
from usercredits.services.orders import Orders
from usercredits.services.orders.buying import check_quantity, check_same_purchase
from usercredits.services.payments import Invoice, Renewal, Subscriptions, WebhookEvent
from usercredits.services.payments.customers import PaymentCustomers
from usercredits.services.steps import Swept, each
from usercredits.services.writes import insert_keyed
from usercredits.values import Plan, PlanStatus, StatusChange

log = logging.getLogger(__name__)

GRACE = timedelta(hours=2)
"""How long after a period ends the sweep waits for news of its renewal before asking the
provider: Stripe finalizes a renewal's invoice about an hour after the period ends, then
charges it."""
RECHECK = timedelta(hours=1)
"""How often the sweep asks again about a plan whose latest period is not known paid (its
renewal, or its payment, not heard of)."""
FIRST_PAYMENT = timedelta(days=1)
"""When the sweep asks about a plan still awaiting its first payment: Stripe gives up on
it after 23 hours."""
MAX_PLANS = 100
"""A wallet's plans listed, newest first."""
MAX_INCOMPLETE = 5
"""Plans a user may have awaiting their first payment: each is a subscription and an open
invoice at the provider, so abandoned checkouts cannot pile them up."""
SWEEP_BATCH = 500
"""Plans the sweep asks about per run; the next run takes the rest."""
WRITE_ATTEMPTS = 5
START_WINDOW = timedelta(hours=12)
"""How long after a plan is made a retry may still make its subscription: well within the
24 hours Stripe keeps an idempotency key, so a subscription made once (its answer lost)
is answered again, never made twice. After it a retry makes none."""
GIVE_UP = timedelta(days=1)
"""When a plan still without a subscription is canceled by its refresh (the sweep's): a
subscription made meanwhile (its answer lost) reaches the plan through its webhooks and is
canceled too, or expires unpaid at Stripe after 23 hours."""

INVOICE_MARGIN = timedelta(days=1)
"""A refresh reads the invoices made since the latest period credited, less this: an
invoice is made at its period's start, give or take the provider's clock."""

_MESSAGES = {
    PlanStatus.INCOMPLETE: "awaiting the first payment",
    PlanStatus.ACTIVE: "paid",
    PlanStatus.PAST_DUE: "a renewal's payment failed; the provider retries it",
    PlanStatus.CANCELED: "canceled",
}


PlanChange = Callable[[Plan, datetime], dict[str, Any] | None]
"""What a write makes of the plan as it stands (an update), or None when nothing changes."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    plan: Plan
    payment_client_secret: str | None
    """For the user to confirm the first payment; None when nothing is due now."""


class Plans:
    def __init__(
        self,
        *,
        plans: Collection,
        offers: Offers,
        orders: Orders,
        payments: Subscriptions,
        customers: PaymentCustomers,
        clock: Clock,
        limits: InputLimits,
    ) -> None:
        self._offers = offers
        self._orders = orders
        self._payments = payments
        self._customers = customers
        self._clock = clock
        self._limits = limits
        self._plans = plans

    # -- reads ---------------------------------------------------------------------------

    async def get_plan(self, *, plan_id: str, visible_to: Principal | None = None) -> Plan:
        """The plan; one `visible_to` may not see is NotFound too, as an unknown id is."""
        raw = await self._plans.find_one({"_id": object_id(plan_id, "plan")})
        if raw is None or (visible_to is not None and not visible_to.may_see(raw["user_id"])):
            raise NotFound(f"plan {plan_id} does not exist")
        return Plan.model_validate(raw)

    async def list_plans(self, *, user_id: str) -> list[Plan]:
        """The user's plans, newest first (the latest MAX_PLANS)."""
        cursor = self._plans.find({"user_id": user_id}).sort("_id", -1).limit(MAX_PLANS)
        return [Plan.model_validate(raw) async for raw in cursor]

    # -- subscribing ---------------------------------------------------------------------

    async def subscribe(
        self,
        *,
        user_id: str,
        offer_id: str,
        quantity: int = 1,
        currency: str | None = None,
        idempotency_key: str | None = None,
    ) -> Subscribed:
        """Subscribes the user to a renewing SUBSCRIPTION offer. The plan is INCOMPLETE
        until its first invoice is paid; the same key returns the same plan."""
        if idempotency_key is not None:
            self._limits.key(idempotency_key)
            existing = await self._by_key(user_id, idempotency_key)
            if existing is not None:
                return await self._replayed(existing, offer_id, quantity, currency)
        check_quantity(quantity)
        priced = await self._orders.priced(
            user_id=user_id, offer_id=offer_id, quantity=quantity, currency=currency, plan=True
        )
        offer, total = priced.offer, priced.total
        awaiting = {"user_id": user_id, "status": PlanStatus.INCOMPLETE.value}
        if await self._plans.count_documents(awaiting) >= MAX_INCOMPLETE:
            raise QuantityLimit(
                f"{MAX_INCOMPLETE} plans await their first payment: pay or cancel one first"
            )
        now = self._clock.now()
        status = PlanStatus.INCOMPLETE
        document = PlanDocument(
            user_id=user_id,
            offer_id=offer.id,
            offer_group=offer.offer_group,
            quantity=quantity,
            token_count=offer.token_count * quantity,
            currency=total.currency,
            total_minor_units=total.minor_units,
            status=status,
            idempotency_key=idempotency_key,
            created_at=now,
            updated_at=now,
            refresh_after=now + FIRST_PAYMENT,
            history=[StatusChange[PlanStatus](at=now, status=status, message="subscribed")],
        )
        raced = await insert_keyed(
            self._plans, document, idempotency_key, partial(self._by_key, user_id)
        )
        if raced is not None:
            return await self._replayed(raced, offer_id, quantity, currency)
        return await self._make_subscription(Plan.model_validate(document))

    async def _make_subscription(self, plan: Plan) -> Subscribed:
        """Makes the plan's subscription (again, after a crash: the provider's idempotency
        key is the plan's id) on the price the plan was sold at."""
        offer = await self._offers.get_offer(offer_id=plan.offer_id)
        price = await self._payments.recurring_price(
            offer_id=plan.offer_id,
            name=offer.name,
            amount=Money(plan.total_minor_units // plan.quantity, plan.currency),
            interval=renewal_interval(offer.cycle, offer.custom_cycle_seconds),
        )
        renewal = await self._payments.create_renewal(
            plan_id=plan.id,
            user_id=plan.user_id,
            customer_id=await self._customers.customer(user_id=plan.user_id),
            price_id=price,
            quantity=plan.quantity,
        )
        return Subscribed(await self._apply(plan, renewal), renewal.client_secret)

    async def _replayed(
        self, plan: Plan, offer_id: str, quantity: int, currency: str | None
    ) -> Subscribed:
        check_same_purchase(plan, plan.idempotency_key, offer_id, quantity, currency)
        if plan.status is PlanStatus.CANCELED:
            return Subscribed(plan, None)
        if plan.subscription_id is None:
            if self._clock.now() - plan.created_at < START_WINDOW:
                return await self._make_subscription(plan)
            return Subscribed(await self.refresh_plan(plan_id=plan.id), None)
        renewal = await self._payments.get_renewal(plan.subscription_id)
        return Subscribed(await self._apply(plan, renewal), renewal.client_secret)

    async def _by_key(self, user_id: str, key: str) -> Plan | None:
        raw = await self._plans.find_one({"user_id": user_id, "idempotency_key": key})
        return None if raw is None else Plan.model_validate(raw)

    # -- changes -------------------------------------------------------------------------

    async def cancel(self, *, plan_id: str, at_period_end: bool = True) -> Plan:
        """Stops renewal at the end of the paid period, or now (the period's tokens stay)."""
        plan = await self._changeable(plan_id)
        if plan.subscription_id is None:  # none was made: nothing to stop at the provider
            plan = await self._write(plan.id, _canceled_here)
            if plan.subscription_id is None:
                return plan
        renewal = await self._payments.cancel_renewal(
            plan.subscription_id, at_period_end=at_period_end
        )
        return await self._apply(plan, renewal)

    async def resume(self, *, plan_id: str) -> Plan:
        """Undoes a cancel at period end; a plan not set to end is returned as it is."""
        plan = await self._changeable(plan_id)
        if not plan.cancel_at_period_end or plan.subscription_id is None:
            return plan
        return await self._apply(plan, await self._payments.resume_renewal(plan.subscription_id))

    async def _changeable(self, plan_id: str) -> Plan:
        plan = await self.get_plan(plan_id=plan_id)
        if plan.status is PlanStatus.CANCELED:
            raise PlanCanceled(f"plan {plan_id} is canceled; subscribe again to renew")
        return plan

    # -- news from the provider ----------------------------------------------------------

    async def refresh_plan(self, *, plan_id: str) -> Plan:
        """Reads the plan's subscription and recent paid invoices from the provider and
        applies them (for webhooks that were missed)."""
        plan = await self.get_plan(plan_id=plan_id)
        if plan.subscription_id is None:  # its making was cut short
            if self._clock.now() - plan.created_at < GIVE_UP:
                return plan
            return await self._write(plan.id, _never_started)
        renewal = await self._payments.get_renewal(plan.subscription_id)
        latest = await self._orders.latest_period(plan_id=plan.id)
        since = (plan.created_at if latest is None else latest) - INVOICE_MARGIN
        invoices = await self._payments.paid_invoices(plan.subscription_id, since=since)
        return await self._apply(plan, renewal, invoices)

    async def apply_event(self, event: WebhookEvent) -> str:
        """Applies a verified event about a subscription (its own or an invoice's): reads
        the subscription from the provider, credits the event's invoice if it is paid, and
        returns the plan's status, or `unknown subscription`. PaymentFailed (the provider
        could not be read) leaves it for the provider to deliver again."""
        if event.subscription_id is None:
            raise Impossible(f"event {event.id} names no subscription")
        await self._credit_named_invoice(event)
        try:
            renewal = await self._payments.get_renewal(event.subscription_id)
            plan = None if renewal.plan_id is None else await self.get_plan(plan_id=renewal.plan_id)
        except NotFound:
            return _unknown(event)
        if plan is None or plan.subscription_id not in (None, renewal.id):
            return _unknown(event)
        invoices = () if event.invoice is None else (event.invoice,)
        return (await self._apply(plan, renewal, invoices)).status.value

    async def _credit_named_invoice(self, event: WebhookEvent) -> None:
        """Credits the paid invoice an event brings to the plan its metadata names, before
        the provider is asked anything: the signed event is the provider's word, so the
        period is credited even when the reads that follow fail (the provider then delivers
        the event again, which credits nothing more: the order is keyed by the invoice)."""
        invoice = event.invoice
        if invoice is None or not invoice.paid or event.plan_id is None:
            return
        try:
            plan = await self.get_plan(plan_id=event.plan_id)
        except NotFound:
            return
        if plan.user_id == event.user_id and plan.subscription_id in (
            None,
            invoice.subscription_id,
        ):
            await self._orders.pay_invoice(plan=plan, invoice=invoice)

    async def refresh_due(self, *, now: datetime) -> Swept:
        """The sweep's plan half: asks the provider about plans whose period ended without
        news (or whose latest period is not known paid). `done`: how many it brought up to
        date; one that fails is logged, skipped and asked about again in RECHECK."""
        cursor = (
            self._plans.find({"refresh_after": due_by(now)}, {"_id": 1})
            .sort("refresh_after", 1)
            .limit(SWEEP_BATCH)
        )

        async def refresh(raw: dict[str, Any]) -> bool:
            plan_id = str(raw["_id"])
            try:
                await self.refresh_plan(plan_id=plan_id)
            except Exception:
                # Unreachable provider, or a subscription it no longer has: ask again later
                # rather than first at every sweep.
                await self._write(plan_id, _ask_again_later)
                raise
            return True

        return await each(cursor, refresh, what="plan")

    async def _apply(self, plan: Plan, renewal: Renewal, invoices: Sequence[Invoice] = ()) -> Plan:
        """Credits the paid invoices of the plan's subscription (each once), then takes its
        status and period: credit first, so a crash between the two is completed by the
        next news, and an ACTIVE plan has its period's tokens.

        Two instances may apply reads of the subscription made at different moments in
        the wrong order (a failed payment's, then its successful retry's, written the other
        way round): whoever changes the status reads the subscription once more and applies
        that, so the last write follows a read made after every earlier write."""
        paid = {
            invoice.id: invoice
            for invoice in (renewal.latest_invoice, *invoices)
            if invoice is not None and invoice.paid and invoice.subscription_id == renewal.id
        }
        for invoice in sorted(paid.values(), key=lambda invoice: invoice.period_start):
            await self._orders.pay_invoice(plan=plan, invoice=invoice)
        updated = await self._write(plan.id, _following(renewal))
        if updated.status is PlanStatus.CANCELED and renewal.status is not PlanStatus.CANCELED:
            # A subscription made for a plan that ended first (its making was retried after
            # it was canceled, or its answer was lost): it must not bill the user.
            log.warning("canceling the subscription of a canceled plan", extra={"plan": plan.id})
            await self._payments.cancel_renewal(renewal.id, at_period_end=False)
        elif updated.revision != plan.revision and updated.status is not plan.status:
            fresh = await self._payments.get_renewal(renewal.id)
            if fresh != renewal:
                updated = await self._write(plan.id, _following(fresh))
        return updated

    async def _write(self, plan_id: str, change: PlanChange) -> Plan:
        """Applies `change(current plan, now)` (an update, or None for nothing to do) if no
        other write came between the read and the write; else reads and tries again."""
        for _ in range(WRITE_ATTEMPTS):
            current = await self.get_plan(plan_id=plan_id)
            now = self._clock.now()
            update = change(current, now)
            if update is None:
                return current
            update.setdefault("$set", {})["updated_at"] = now
            update["$inc"] = {"revision": 1}
            result = await self._plans.update_one(
                {"_id": object_id(plan_id, "plan"), "revision": current.revision}, update
            )
            if result.modified_count == 1:
                return await self.get_plan(plan_id=plan_id)
        raise Conflict(f"plan {plan_id} kept changing; try again")


def _following(renewal: Renewal) -> PlanChange:
    """The write that makes the plan what the provider says of its subscription: nothing
    for a canceled plan (final) or a read older than the plan's period."""

    def follow(current: Plan, now: datetime) -> dict[str, Any] | None:
        stale = (
            current.current_period_end is not None
            and renewal.period_end is not None
            and renewal.period_end < current.current_period_end
        )
        if current.status is PlanStatus.CANCELED or stale:
            return None
        fields: dict[str, Any] = {
            "subscription_id": renewal.id,
            "status": renewal.status.value,
            "current_period_start": renewal.period_start,
            "current_period_end": renewal.period_end,
            "cancel_at_period_end": renewal.cancel_at_period_end,
            "refresh_after": _next_check(renewal, now, current.refresh_after),
        }
        if all(getattr(current, name) == value for name, value in fields.items()):
            return None
        update: dict[str, Any] = {"$set": fields}
        if renewal.status is not current.status:
            message = _MESSAGES[renewal.status]
            step = StatusChange[PlanStatus](at=now, status=renewal.status, message=message)
            update["$push"] = {"history": step.model_dump()}
        return update

    return follow


def _unknown(event: WebhookEvent) -> str:
    """A subscription no plan of this service made (in the dashboard, by another product
    on the account): acknowledged, so that the provider stops sending it."""
    log.warning(
        "event for a subscription no plan has",
        extra={"event_id": event.id, "subscription_id": event.subscription_id},
    )
    return "unknown subscription"


def _ask_again_later(current: Plan, now: datetime) -> dict[str, Any] | None:
    return {"$set": {"refresh_after": now + RECHECK}}


def _canceled_here(current: Plan, now: datetime) -> dict[str, Any] | None:
    """A plan whose subscription was never made, canceled without asking the provider."""
    return _cancel_unstarted(current, now, "canceled before it was paid")


def _never_started(current: Plan, now: datetime) -> dict[str, Any] | None:
    return _cancel_unstarted(current, now, "its subscription was never made")


def _cancel_unstarted(current: Plan, now: datetime, message: str) -> dict[str, Any] | None:
    if current.status is PlanStatus.CANCELED or current.subscription_id is not None:
        return None
    step = StatusChange[PlanStatus](at=now, status=PlanStatus.CANCELED, message=message)
    return {
        "$set": {"status": PlanStatus.CANCELED.value, "refresh_after": None},
        "$push": {"history": step.model_dump()},
    }


def _next_check(renewal: Renewal, now: datetime, planned: datetime | None) -> datetime | None:
    """When the sweep should ask about the plan if no news comes first: after the period
    ends when it is paid; within the hour while its latest period is not known paid (a
    missed `invoice.paid` is then found while the period is still of use), keeping an
    hourly check already planned rather than pushing it back at every read."""
    if renewal.status is PlanStatus.CANCELED:
        return None
    invoice, end = renewal.latest_invoice, renewal.period_end
    if (
        renewal.status is PlanStatus.ACTIVE
        and end is not None
        and invoice is not None
        and invoice.paid
        and invoice.period_end >= end
    ):
        return max(end + GRACE, now + RECHECK)
    soon = now + (FIRST_PAYMENT if renewal.status is PlanStatus.INCOMPLETE else RECHECK)
    return planned if planned is not None and now < planned <= soon else soon
