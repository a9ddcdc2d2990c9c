"""The payment-client seam: create a payment for an order, read its state, cancel it, and
verify and parse a provider's webhook.

Orders talk only to this Protocol, so the Stripe client and the sandbox are interchangeable.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from usercredits.services.money import Money


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
class WebhookEvent:
    """A verified provider event, reduced to what orders need."""

    id: str
    type: str
    payment_id: str | None
    state: PaymentState | None
    amount: Money | None
    message: str = ""


class PaymentClient(Protocol):
    """What an order needs from a payment provider. Errors are raised as PaymentFailed."""

    name: str

    async def create_payment(self, *, order_id: str, user_id: str, amount: Money) -> Payment:
        """Creates (idempotently, keyed by `order_id`) a payment the user can confirm."""
        ...

    async def get_payment(self, payment_id: str) -> Payment: ...

    async def cancel_payment(self, payment_id: str) -> Payment: ...

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

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """Verifies the signature over the raw body; InvalidInput when it does not hold."""
        ...

    async def close(self) -> None:
        """Releases the client's connections."""
        ...
