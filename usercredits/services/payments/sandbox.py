"""The SANDBOX payment provider: no money moves. For local runs and demos only.

Payments live in this process's memory and stay pending until `settle` is called (by a
person through the sandbox-only API, or by a test), which makes them succeed or fail.
It sends no webhooks. Saving a card saves a test Visa at once, and charges of saved cards
succeed, unless `refuse_charges` says with which decline code to refuse them.
"""

import secrets
from dataclasses import replace

from usercredits.services.errors import InvalidInput, NotFound, PaymentFailed
from usercredits.services.money import Money
from usercredits.services.payments.base import Card, Payment, PaymentState, WebhookEvent


class SandboxPaymentClient:
    name = "sandbox"

    def __init__(self) -> None:
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

    async def close(self) -> None:
        """Nothing to release: sandbox payments live in memory."""

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """The sandbox sends no webhooks: its payments complete through `settle`."""
        raise InvalidInput(
            "the sandbox sends no webhooks; complete a sandbox payment with completeSandboxPayment"
        )
