"""Applying what the payment provider says to orders: its verified events
(services/provider_events.py), a refresh of a missed one, the sandbox's settling by hand,
and the sweep's reconciliation and expiry. No GraphQL, no HTTP."""

import logging
from datetime import datetime
from typing import Any

from usercredits.services.clock import due_by
from usercredits.services.errors import NoSandboxPayment, NotFound
from usercredits.services.ids import object_id
from usercredits.services.money import Money
from usercredits.services.orders.base import OrdersBase
from usercredits.services.payments import PaymentState
from usercredits.services.steps import Swept, each
from usercredits.values import Order, OrderStatus, StatusChange
from usercredits.values.orders import INVOICE_KEY

log = logging.getLogger(__name__)

_STATUS_OF_PAYMENT = {
    PaymentState.SUCCEEDED: OrderStatus.PAID,
    PaymentState.FAILED: OrderStatus.REFUSED,
    PaymentState.CANCELED: OrderStatus.CANCELED,
    PaymentState.REFUNDED: OrderStatus.REFUNDED,
}


class PaymentOutcomes(OrdersBase):
    """What the provider, the sandbox and the sweep tell an order."""

    async def refresh_order(self, *, order_id: str) -> Order:
        """Pulls the payment's state from the provider and applies it (a missed webhook)."""
        order = await self.get_order(order_id=order_id)
        if order.payment_intent_id is None:
            return order
        payment = await self._payments.get_payment(order.payment_intent_id)
        return await self.apply_payment(
            order=order, state=payment.state, amount=payment.amount, message=payment.message
        )

    async def apply_payment(
        self, *, order: Order, state: PaymentState, amount: Money | None, message: str
    ) -> Order:
        """Applies what the provider says of the order's payment (a webhook or a refresh).

        A success for another amount or currency than the order's total makes the order
        INCONSISTENT and credits nothing.
        """
        status = _STATUS_OF_PAYMENT.get(state)
        if status is None:
            return order
        total = Money(order.total_minor_units, order.currency)
        if status is OrderStatus.PAID and amount is not None and amount != total:
            status = OrderStatus.INCONSISTENT
            message = (
                f"received {amount.amount} {amount.currency}, "
                f"expected {total.amount} {total.currency}"
            )
        return await self.apply_status(order_id=order.id, status=status, message=message)

    async def settle_sandbox_payment(self, *, order: Order, succeed: bool) -> Order:
        """The sandbox settles the order's payment as told, and the order applies it as it
        would a webhook: the purchase flow, walked without a provider."""
        if self._sandbox is None or not order.payment_intent_id:
            raise NoSandboxPayment(f"order {order.id} has no sandbox payment to complete")
        self._sandbox.settle(order.payment_intent_id, succeed=succeed)
        return await self.refresh_order(order_id=order.id)

    async def find_by_payment(self, *, payment_id: str) -> Order | None:
        return await self._one({"payment_intent_id": payment_id})

    async def find_by_invoice_payment(self, *, payment_id: str) -> Order | None:
        """The plan's order for the invoice a payment paid (asked of the provider: a plan's
        order keeps its invoice, not the invoice's payment)."""
        owner = await self._payments.invoice_paid_by(payment_id)
        if owner is None:
            return None
        return await self._by_key(owner.user_id, f"{INVOICE_KEY}{owner.invoice_id}")

    async def reconcile_pending(self, *, older_than: datetime) -> Swept:
        """Refreshes pending orders created before `older_than` (missed webhooks); an order
        that cannot be refreshed (the provider unreachable, a document the code cannot
        read) is logged and skipped, left pending for the next run. `done`: how many
        moved."""
        cursor = self._orders.find(
            {
                "status": OrderStatus.PENDING.value,
                "created_at": due_by(older_than, inclusive=False),
            },
            {"payment_intent_id": 1},
        )

        async def reconcile(doc: dict[str, Any]) -> bool:
            if doc.get("payment_intent_id") is None:  # nothing to ask the provider
                return False
            refreshed = await self.refresh_order(order_id=str(doc["_id"]))
            return refreshed.status is not OrderStatus.PENDING

        return await each(cursor, reconcile, what="pending order")

    async def adopt_payment(self, *, order_id: str, user_id: str, payment_id: str) -> Order | None:
        """The order a verified provider event names in its payment's metadata, with that
        payment recorded on it if it had none (the answer that would have recorded it was
        lost); None when the user has no such order, or it records another payment."""
        try:
            named = {"_id": object_id(order_id, "order"), "user_id": user_id}
        except NotFound:
            return None
        await self._orders.update_one(
            {**named, "payment_intent_id": None}, {"$set": {"payment_intent_id": payment_id}}
        )
        order = await self._one(named)
        if order is not None and order.payment_intent_id != payment_id:
            log.warning(
                "a payment names an order that records another one",
                extra={"order_id": order_id, "payment_id": payment_id},
            )
            return None
        return order

    async def expire_orders(self, *, now: datetime) -> int:
        """The sweep's order half: paid orders past their expiry become expired."""
        expired = OrderStatus.EXPIRED
        event = StatusChange[OrderStatus](at=now, status=expired, message="period ended")
        result = await self._orders.update_many(
            {"status": OrderStatus.PAID.value, "expires": due_by(now)},
            {
                "$set": {"status": OrderStatus.EXPIRED.value, "updated_at": now},
                "$push": {"history": event.model_dump()},
            },
        )
        return result.modified_count
