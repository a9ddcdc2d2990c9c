"""Payment providers behind one interface: the sandbox here, Stripe beside it."""

from usercredits.services.payments.base import (
    Card,
    CardsOnFile,
    Invoice,
    InvoiceOwner,
    Payment,
    PaymentClient,
    PaymentState,
    Renewal,
    Subscriptions,
    WebhookEvent,
)
from usercredits.services.payments.sandbox import SandboxPaymentClient

__all__ = [
    "Card",
    "CardsOnFile",
    "Invoice",
    "InvoiceOwner",
    "Payment",
    "PaymentClient",
    "PaymentState",
    "Renewal",
    "SandboxPaymentClient",
    "Subscriptions",
    "WebhookEvent",
]
