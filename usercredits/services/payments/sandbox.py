"""The SANDBOX payment provider: no money moves. For local runs and demos only.

Payments live in this process's memory and stay pending until `settle` is called (by a
person through the sandbox-only API, or by a test), which makes them succeed or fail.
It sends no webhooks.
"""

import secrets
from dataclasses import replace

from usercredits.services.errors import InvalidInput, NotFound, PaymentFailed
from usercredits.services.money import Money
from usercredits.services.payments.base import Payment, PaymentState, WebhookEvent


class SandboxPaymentClient:
    name = "sandbox"

    def __init__(self) -> None:
        self._payments: dict[str, Payment] = {}
        self._by_order: dict[str, str] = {}

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

    def _set(self, payment: Payment, state: PaymentState, message: str) -> Payment:
        updated = replace(payment, state=state, message=message)
        self._payments[payment.id] = updated
        return updated

    async def close(self) -> None:
        """Nothing to release: sandbox payments live in memory."""

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """The sandbox sends no webhooks: its payments complete through `settle`."""
        raise InvalidInput(
            "the sandbox sends no webhooks; complete a sandbox payment with completeSandboxPayment"
        )
