"""Payment providers behind one interface: the sandbox here, Stripe beside it."""

from usercredits.services.payments.base import (
    Card,
    Payment,
    PaymentClient,
    PaymentState,
    WebhookEvent,
)
from usercredits.services.payments.sandbox import SandboxPaymentClient

__all__ = [
    "Card",
    "Payment",
    "PaymentClient",
    "PaymentState",
    "SandboxPaymentClient",
    "WebhookEvent",
]
