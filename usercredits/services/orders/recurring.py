"""The orders of plans and auto top-ups: a plan's paid invoice, its orders, and a saved
card charged off-session. No GraphQL, no HTTP."""

from dataclasses import dataclass
from datetime import datetime

from usercredits.services.ids import object_id
from usercredits.services.money import Money
from usercredits.services.orders.base import order_document
from usercredits.services.orders.outcomes import PaymentOutcomes
from usercredits.services.payments import Invoice
from usercredits.values import Order, OrderStatus, Plan
from usercredits.values.orders import INVOICE_KEY

PLAN_ORDERS = 100
"""A plan's orders listed with it, newest first: eight years of monthly periods."""


@dataclass(frozen=True, slots=True)
class Charged:
    """An order after a charge of a saved card, and why the card was refused if it was."""

    order: Order
    decline_code: str | None


@dataclass(frozen=True, slots=True)
class SavedCard:
    """A card the provider keeps for a customer, charged without the user (auto top-up)."""

    customer_id: str
    card_id: str


class Recurring(PaymentOutcomes):
    """What plans and auto top-ups ask of orders."""

    async def charge_saved_card(self, *, order_id: str, card: SavedCard) -> Charged:
        """Pays a pending off-session order with a saved card and applies the outcome. The
        order exists before the charge and the charge's idempotency key is its id, so a
        charge whose answer was lost (PaymentFailed here) is repeated, with the same key and
        amount, by calling this again: the provider returns the first one's result. Once
        the order has its payment, this reads it instead of charging."""
        order = await self.get_order(order_id=order_id)
        if order.status is not OrderStatus.PENDING:
            return Charged(order, None)
        if order.payment_intent_id is not None:
            return Charged(await self.refresh_order(order_id=order_id), None)
        payment = await self._payments.charge_card(
            order_id=order.id,
            user_id=order.user_id,
            amount=Money(order.total_minor_units, order.currency),
            customer_id=card.customer_id,
            card_id=card.card_id,
        )
        await self._orders.update_one(
            {"_id": object_id(order_id, "order"), "payment_intent_id": None},
            {"$set": {"payment_intent_id": payment.id}},
        )
        order = await self.apply_payment(
            order=order, state=payment.state, amount=payment.amount, message=payment.message
        )
        return Charged(order, payment.decline_code)

    async def pay_invoice(self, *, plan: Plan, invoice: Invoice) -> Order:
        """The plan's order for one paid invoice, PAID: it credits the plan's tokens for
        exactly the invoice's period. Keyed by the invoice, so an invoice seen again (a
        replayed webhook, a refresh listing it) credits once; a call cut short by a crash
        is completed by the next."""
        key = f"{INVOICE_KEY}{invoice.id}"
        order = await self._by_key(plan.user_id, key)
        if order is None:
            document = order_document(
                now=self._clock.now(),
                user_id=plan.user_id,
                offer_id=plan.offer_id,
                offer_group=plan.offer_group,
                quantity=plan.quantity,
                token_count=plan.token_count,
                total=invoice.amount,
                status=OrderStatus.PENDING,
                message=f"invoice {invoice.id}",
                key=key,
                starts=invoice.period_start,
                expires=invoice.period_end,
                plan_id=plan.id,
            )
            # One made meanwhile under the key is the one paid: once.
            order = await self._insert_keyed(document) or Order.model_validate(document)
        return await self.apply_status(
            order_id=order.id, status=OrderStatus.PAID, message=f"invoice {invoice.id} paid"
        )

    async def latest_period(self, *, plan_id: str) -> datetime | None:
        """When the latest period a plan's orders credited started."""
        raw = await self._orders.find_one({"plan_id": plan_id}, sort=[("starts", -1)])
        return None if raw is None else raw["starts"]

    async def plan_orders(self, *, plan_id: str) -> list[Order]:
        """A plan's orders, one per paid period, newest first (the latest PLAN_ORDERS)."""
        cursor = self._orders.find({"plan_id": plan_id}).sort("starts", -1).limit(PLAN_ORDERS)
        return [Order.model_validate(raw) async for raw in cursor]
