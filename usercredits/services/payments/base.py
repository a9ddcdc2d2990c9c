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

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """Verifies the signature over the raw body; InvalidInput when it does not hold."""
        ...

    async def close(self) -> None:
        """Releases the client's connections."""
        ...
