"""The SANDBOX payment provider: no money moves. For local runs and demos only.

Payments live in this process's memory and stay pending until `settle` is called (by a
person through the sandbox-only API, or by a test), which makes them succeed or fail.
It sends no webhooks. Saving a card saves a test Visa at once, and charges of saved cards
succeed, unless `refuse_charges` says with which decline code to refuse them. A plan's
subscription is paid at once and renews by its clock: each read of it bills the periods
that ended since (paid, or past due while `refuse_charges` is set), as Stripe would have,
from the first period's start (the billing anchor); a refused invoice is paid again at a
read once charges are no longer refused, and a first invoice left unpaid for 23 hours ends
the subscription.
"""

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from usercredits.services.catalogue.cycles import Interval
from usercredits.services.clock import Clock, SystemClock
from usercredits.services.errors import InvalidInput, NotFound, PaymentFailed
from usercredits.services.money import Money
from usercredits.services.payments.base import (
    Card,
    Invoice,
    InvoiceOwner,
    Payment,
    PaymentState,
    Renewal,
    WebhookEvent,
)
from usercredits.values import PlanStatus

FIRST_PAYMENT_WINDOW = timedelta(hours=23)
"""How long Stripe waits for a subscription's first payment before ending it."""


@dataclass(frozen=True, slots=True)
class _Price:
    amount: Money
    interval: Interval


@dataclass(slots=True)
class _Subscription:
    id: str
    plan_id: str
    price: _Price
    quantity: int
    status: PlanStatus
    anchor: datetime
    cancel_at_period_end: bool = False
    invoices: list[Invoice] = field(default_factory=list)

    def renewal(self) -> Renewal:
        latest = self.invoices[-1]
        return Renewal(
            id=self.id,
            plan_id=self.plan_id,
            status=self.status,
            period_start=latest.period_start,
            period_end=latest.period_end,
            cancel_at_period_end=self.cancel_at_period_end,
            latest_invoice=latest,
        )


class SandboxPaymentClient:
    name = "sandbox"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        """What plans renew by."""
        self._prices: dict[str, _Price] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._payments: dict[str, Payment] = {}
        self._by_order: dict[str, str] = {}
        self._cards: dict[str, list[Card]] = {}
        self.refuse_charges: str | None = None
        """A decline code: charges of saved cards are refused with it while set."""

    async def create_customer(self, *, user_id: str) -> str:
        return f"sandbox_cus_{user_id}"

    async def setup_card(self, *, customer_id: str) -> str:
        cards = self._cards.setdefault(customer_id, [])
        card = Card(
            id=f"sandbox_pm_{secrets.token_hex(6)}",
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=2040,
        )
        cards.insert(0, card)
        return f"sandbox_seti_{secrets.token_hex(6)}_secret_{secrets.token_hex(8)}"

    async def cards(self, *, customer_id: str) -> list[Card]:
        return list(self._cards.get(customer_id, []))

    async def charge_card(
        self, *, order_id: str, user_id: str, amount: Money, customer_id: str, card_id: str
    ) -> Payment:
        if order_id in self._by_order:
            return self._payments[self._by_order[order_id]]
        payment = await self.create_payment(order_id=order_id, user_id=user_id, amount=amount)
        if self.refuse_charges is None:
            return self.settle(payment.id, succeed=True)
        refused = self.settle(payment.id, succeed=False, message="the sandbox refused the card")
        return self._set(refused, refused.state, refused.message, self.refuse_charges)

    async def create_payment(self, *, order_id: str, user_id: str, amount: Money) -> Payment:
        if order_id in self._by_order:
            return self._payments[self._by_order[order_id]]
        payment_id = f"sandbox_pi_{secrets.token_hex(8)}"
        payment = Payment(
            id=payment_id,
            state=PaymentState.PENDING,
            amount=amount,
            client_secret=f"{payment_id}_secret_{secrets.token_hex(8)}",
        )
        self._payments[payment_id] = payment
        self._by_order[order_id] = payment_id
        return payment

    async def get_payment(self, payment_id: str) -> Payment:
        try:
            return self._payments[payment_id]
        except KeyError:
            raise NotFound(f"sandbox payment {payment_id} does not exist") from None

    async def cancel_payment(self, payment_id: str) -> Payment:
        payment = await self.get_payment(payment_id)
        if payment.state is PaymentState.SUCCEEDED:
            raise PaymentFailed(f"sandbox payment {payment_id} has succeeded; refund it instead")
        return self._set(payment, PaymentState.CANCELED, "canceled")

    def settle(self, payment_id: str, *, succeed: bool, message: str = "") -> Payment:
        """Makes a pending sandbox payment succeed or fail, as a card network would."""
        payment = self._payments.get(payment_id)
        if payment is None:
            raise NotFound(f"sandbox payment {payment_id} does not exist")
        state = PaymentState.SUCCEEDED if succeed else PaymentState.FAILED
        return self._set(payment, state, message or ("approved" if succeed else "declined"))

    def _set(
        self, payment: Payment, state: PaymentState, message: str, code: str | None = None
    ) -> Payment:
        updated = replace(payment, state=state, message=message, decline_code=code)
        self._payments[payment.id] = updated
        return updated

    async def recurring_price(
        self, *, offer_id: str, name: str, amount: Money, interval: Interval
    ) -> str:
        price_id = (
            f"sandbox_price_{offer_id}_{amount.minor_units}{amount.currency}"
            f"_{interval.count}{interval.unit}"
        )
        self._prices[price_id] = _Price(amount, interval)
        return price_id

    async def create_renewal(
        self, *, plan_id: str, user_id: str, customer_id: str, price_id: str, quantity: int
    ) -> Renewal:
        renewal_id = f"sandbox_sub_{plan_id}"
        known = self._subscriptions.get(renewal_id)
        if known is None:
            price = self._prices.get(price_id)
            if price is None:
                raise NotFound(f"sandbox price {price_id} does not exist")
            now = self.clock.now()
            known = _Subscription(renewal_id, plan_id, price, quantity, PlanStatus.INCOMPLETE, now)
            self._bill(known)
            self._subscriptions[renewal_id] = known
        return known.renewal()

    async def get_renewal(self, renewal_id: str) -> Renewal:
        return self._renewed(renewal_id).renewal()

    async def paid_invoices(self, renewal_id: str, *, since: datetime) -> list[Invoice]:
        invoices = self._renewed(renewal_id).invoices
        return [i for i in reversed(invoices) if i.paid and i.period_start >= since]

    async def cancel_renewal(self, renewal_id: str, *, at_period_end: bool) -> Renewal:
        subscription = self._renewed(renewal_id)
        if at_period_end:
            subscription.cancel_at_period_end = True
        else:
            subscription.status = PlanStatus.CANCELED
        return subscription.renewal()

    async def invoice_paid_by(self, payment_id: str) -> InvoiceOwner | None:
        """Sandbox invoices are paid without a payment: none is ever refunded."""
        return None

    async def resume_renewal(self, renewal_id: str) -> Renewal:
        subscription = self._renewed(renewal_id)
        subscription.cancel_at_period_end = False
        return subscription.renewal()

    def _renewed(self, renewal_id: str) -> _Subscription:
        """The subscription as its clock has it now: an unpaid invoice paid if charges
        are no longer refused, then every period that ended since billed."""
        subscription = self._subscriptions.get(renewal_id)
        if subscription is None:
            raise NotFound(f"sandbox subscription {renewal_id} does not exist")
        now = self.clock.now()
        latest = subscription.invoices[-1]
        unpaid_too_long = now - subscription.anchor >= FIRST_PAYMENT_WINDOW
        if subscription.status is PlanStatus.INCOMPLETE and unpaid_too_long:
            subscription.status = PlanStatus.CANCELED
        elif (
            subscription.status is not PlanStatus.CANCELED
            and not latest.paid
            and self.refuse_charges is None
        ):
            subscription.invoices[-1] = replace(latest, paid=True)
            subscription.status = PlanStatus.ACTIVE
        while (
            subscription.status in (PlanStatus.ACTIVE, PlanStatus.PAST_DUE)
            and subscription.invoices[-1].period_end <= now
        ):
            if subscription.cancel_at_period_end:
                subscription.status = PlanStatus.CANCELED
            else:
                self._bill(subscription)
        return subscription

    def _bill(self, subscription: _Subscription) -> None:
        """Invoices the next period: paid at once unless charges are refused."""
        price = subscription.price
        billed = len(subscription.invoices)
        paid = self.refuse_charges is None
        subscription.invoices.append(
            Invoice(
                id=f"sandbox_in_{secrets.token_hex(8)}",
                subscription_id=subscription.id,
                paid=paid,
                amount=Money(
                    price.amount.minor_units * subscription.quantity, price.amount.currency
                ),
                period_start=price.interval.after(subscription.anchor, billed),
                period_end=price.interval.after(subscription.anchor, billed + 1),
            )
        )
        if paid:
            subscription.status = PlanStatus.ACTIVE
        else:
            subscription.status = PlanStatus.INCOMPLETE if billed == 0 else PlanStatus.PAST_DUE

    async def close(self) -> None:
        """Nothing to release: sandbox payments live in memory."""

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """The sandbox sends no webhooks: its payments complete through `settle`."""
        raise InvalidInput(
            "the sandbox sends no webhooks; complete a sandbox payment with completeSandboxPayment"
        )
