"""Payment providers behind one interface: the sandbox here, Stripe beside it."""

from usercredits.services.payments.base import (
    Card,
    Invoice,
    InvoiceOwner,
    Payment,
    PaymentClient,
    PaymentState,
    Renewal,
    WebhookEvent,
)
from usercredits.services.payments.sandbox import SandboxPaymentClient

__all__ = [
    "Card",
    "Invoice",
    "InvoiceOwner",
    "Payment",
    "PaymentClient",
    "PaymentState",
    "Renewal",
    "SandboxPaymentClient",
    "WebhookEvent",
]
