"""Payment providers behind one interface: the sandbox here, Stripe beside it."""

from usercredits.services.payments.base import Payment, PaymentClient, PaymentState, WebhookEvent
from usercredits.services.payments.sandbox import SandboxPaymentClient

__all__ = ["Payment", "PaymentClient", "PaymentState", "SandboxPaymentClient", "WebhookEvent"]
