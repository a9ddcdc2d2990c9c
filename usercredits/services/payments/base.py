"""The payment-client seam, split by concern: payments for orders (`Payments`), customers,
saved cards and off-session charges (`CardsOnFile`), renewing subscriptions and their
invoices (`Subscriptions`), and verifying and parsing a provider's webhook
(`ProviderWebhooks`). A provider's client is all four (`PaymentClient`).

Each service talks only to the part it needs (plans to `Subscriptions`, auto top-ups and
customers to `CardsOnFile`), so the Stripe client and the sandbox are interchangeable, and
what a service can ask of the provider reads from its signature.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from usercredits.services.catalogue.cycles import Interval
from usercredits.services.money import Money
from usercredits.values import PlanStatus


class PaymentState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    state: PaymentState
    amount: Money
    client_secret: str | None = None
    message: str = ""
    decline_code: str | None = None
    """Why a card was refused (card_declined, authentication_required, ...)."""


@dataclass(frozen=True, slots=True)
class Card:
    """A card saved at the provider for payments made without the user (off-session)."""

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class Invoice:
    """One period of a subscription, billed: paid once `paid`, for `amount`."""

    id: str
    subscription_id: str
    paid: bool
    amount: Money
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True, slots=True)
class InvoiceOwner:
    """Who a subscription's invoice billed: the user and the invoice."""

    user_id: str
    invoice_id: str


@dataclass(frozen=True, slots=True)
class Renewal:
    """A renewing subscription at the provider, as plans see it."""

    id: str
    plan_id: str | None
    """Ours, kept in the subscription's metadata; None for a subscription made elsewhere
    (in the dashboard, or by another product on the same account)."""
    status: PlanStatus
    period_start: datetime | None
    period_end: datetime | None
    cancel_at_period_end: bool
    latest_invoice: Invoice | None = None
    client_secret: str | None = None
    """For the user to confirm the latest invoice's payment, while it awaits one."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified provider event, reduced to what orders and plans need: a payment's new
    state, or the subscription it is about (and the invoice, for an invoice's event)."""

    id: str
    type: str
    payment_id: str | None
    state: PaymentState | None
    amount: Money | None
    message: str = ""
    subscription_id: str | None = None
    invoice: Invoice | None = None
    order_id: str | None = None
    """The order a payment's metadata names (set when the payment was made for it): the
    event settles that order even when the answer that would have recorded the payment on
    it was lost."""
    plan_id: str | None = None
    """The plan a subscription's (or an invoice's subscription's) metadata names."""
    user_id: str | None = None
    """The user that metadata names, who must own the order or the plan."""


class Provider(Protocol):
    """Every part of the seam names its provider (what a stored customer was made at).
    Errors are raised as PaymentFailed."""

    name: str


class Payments(Provider, Protocol):
    """Payments for orders, which the user confirms."""

    async def create_payment(self, *, order_id: str, user_id: str, amount: Money) -> Payment:
        """Creates (idempotently, keyed by `order_id`) a payment the user can confirm."""
        ...

    async def get_payment(self, payment_id: str) -> Payment: ...

    async def cancel_payment(self, payment_id: str) -> Payment: ...


class CardsOnFile(Provider, Protocol):
    """A user's customer at the provider, its saved cards and charges made without the user."""

    async def create_customer(self, *, user_id: str) -> str:
        """A customer for the user (idempotently, keyed by the user id): its id."""
        ...

    async def setup_card(self, *, customer_id: str) -> str:
        """The client secret with which the front end saves a card for off-session use."""
        ...

    async def cards(self, *, customer_id: str) -> list[Card]:
        """The customer's saved cards, the one off-session payments use first."""
        ...

    async def charge_card(
        self, *, order_id: str, user_id: str, amount: Money, customer_id: str, card_id: str
    ) -> Payment:
        """Charges a saved card without the user (idempotently, keyed by `order_id`): a
        refusal is a FAILED payment with its decline code, not an error."""
        ...


class Subscriptions(Provider, Protocol):
    """Renewing subscriptions, their prices and their invoices."""

    async def recurring_price(
        self, *, offer_id: str, name: str, amount: Money, interval: Interval
    ) -> str:
        """The id of a price billing `amount` every `interval` for the offer: made on first
        need, the same one afterwards."""
        ...

    async def create_renewal(
        self, *, plan_id: str, user_id: str, customer_id: str, price_id: str, quantity: int
    ) -> Renewal:
        """Subscribes the customer (idempotently, keyed by `plan_id`); its first invoice
        awaits the user's payment (the client secret) unless nothing is due."""
        ...

    async def get_renewal(self, renewal_id: str) -> Renewal: ...

    async def paid_invoices(self, renewal_id: str, *, since: datetime) -> list[Invoice]:
        """The subscription's paid invoices made since `since` (a missed `invoice.paid` is
        among them), newest first."""
        ...

    async def cancel_renewal(self, renewal_id: str, *, at_period_end: bool) -> Renewal: ...

    async def invoice_paid_by(self, payment_id: str) -> InvoiceOwner | None:
        """The subscription invoice a payment paid, if it paid one (its refund takes back
        that period's tokens)."""
        ...

    async def resume_renewal(self, renewal_id: str) -> Renewal:
        """Undoes a cancel at period end."""
        ...


class ProviderWebhooks(Provider, Protocol):
    """The provider's signed deliveries of its events."""

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """Verifies the signature over the raw body; InvalidInput when it does not hold."""
        ...


class PaymentClient(Payments, CardsOnFile, Subscriptions, ProviderWebhooks, Protocol):
    """A provider's client: every part of the seam, and its connections."""

    async def close(self) -> None:
        """Releases the client's connections."""
        ...
