"""Payment providers behind one interface: the sandbox here, Stripe beside it."""

from services.payments.base import Payment, PaymentClient, PaymentState, WebhookEvent
from services.payments.sandbox import SandboxPaymentClient

__all__ = ["Payment", "PaymentClient", "PaymentState", "SandboxPaymentClient", "WebhookEvent"]
