"""The order lifecycle: buying an offer, applying the payment's outcome, bundles, listing.
No GraphQL, no HTTP.

Status transitions are guarded updates, so an outcome applied twice (a retried webhook, a
refresh racing a webhook) changes nothing the second time, and a late failure never undoes
a success. Paying an order is three steps, each once whatever repeats it: the wallet credit
(keyed by the order), the bundle's child orders (keyed by the order and the item), then the
PAID status. There is no transaction: a payment cut short between them is completed by the
next application of the outcome (a retried webhook, the sweep's reconciliation), which does
again only what is missing.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from usercredits.models import OrderDocument
from usercredits.services.catalogue.cycles import expiry, paid_expiry
from usercredits.services.catalogue.offers import Offers
from usercredits.services.clock import Clock, due_by
from usercredits.services.errors import (
    DomainError,
    InvalidInput,
    KeyReused,
    NoSandboxPayment,
    NotFound,
    OrderNotPending,
    QuantityLimit,
)
from usercredits.services.identity.access import Principal
from usercredits.services.ids import object_id, ordered_id
from usercredits.services.limits import DEFAULT_INPUT_LIMITS, InputLimits
from usercredits.services.money import Money, normalize_currency
from usercredits.services.pages import newest_first
from usercredits.services.payments import Invoice, PaymentClient, PaymentState, SandboxPaymentClient
from usercredits.services.steps import Swept, each
from usercredits.services.wallets import Wallets
from usercredits.services.wallets.credits import Credit
from usercredits.services.writes import insert_keyed
from usercredits.values import (
    CombinedItem,
    Cycle,
    LedgerReason,
    Offer,
    Order,
    OrderEvent,
    OrderStatus,
    Plan,
)
from usercredits.values.lots import MAX_TOKENS
from usercredits.values.offers import MAX_MINOR_UNITS
from usercredits.values.orders import (
    BUNDLE_KEY,
    INVOICE_KEY,
    RESERVED_KEYS,
    TOP_UP_KEY,
    Purchase,
    is_service_key,
)

log = logging.getLogger(__name__)

MAX_QUANTITY = 10_000
MAX_PAGE = 200
PLAN_ORDERS = 100
"""A plan's orders listed with it, newest first: eight years of monthly periods."""
ORDERS_PAGE = 20
"""Orders in a page when the caller does not say."""

# Which statuses each status may be reached from. A refused payment can still be retried
# and succeed; nothing leaves PAID but a refund or expiry.
_REACHABLE_FROM: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PAID: frozenset({OrderStatus.PENDING, OrderStatus.REFUSED, OrderStatus.ERROR}),
    OrderStatus.REFUSED: frozenset({OrderStatus.PENDING, OrderStatus.ERROR}),
    OrderStatus.ERROR: frozenset({OrderStatus.PENDING}),
    OrderStatus.CANCELED: frozenset({OrderStatus.PENDING, OrderStatus.REFUSED, OrderStatus.ERROR}),
    OrderStatus.INCONSISTENT: frozenset({OrderStatus.PENDING, OrderStatus.REFUSED}),
    OrderStatus.REFUNDED: frozenset({OrderStatus.PAID, OrderStatus.EXPIRED}),
    OrderStatus.EXPIRED: frozenset({OrderStatus.PAID}),
}

_STATUS_OF_PAYMENT = {
    PaymentState.SUCCEEDED: OrderStatus.PAID,
    PaymentState.FAILED: OrderStatus.REFUSED,
    PaymentState.CANCELED: OrderStatus.CANCELED,
    PaymentState.REFUNDED: OrderStatus.REFUNDED,
}


def check_quantity(quantity: object) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise InvalidInput(f"quantity must be a whole number >= 1, got {quantity!r}")


def check_same_purchase(
    bought: Purchase, key: str | None, offer_id: str, quantity: int, currency: str | None
) -> None:
    """A request retried under an idempotency key must repeat the one that first used it:
    the offer, the quantity and the currency (none named: the first one's). An order's rule
    and a plan's."""
    asked = (offer_id, quantity, normalize_currency(currency or bought.currency))
    if (bought.offer_id, bought.quantity, bought.currency) != asked:
        raise KeyReused(
            f"idempotency key {key!r} was used for {bought.quantity} of offer "
            f"{bought.offer_id} in {bought.currency}; a retry must repeat the same request"
        )


@dataclass(frozen=True, slots=True)
class Period:
    """When the tokens of a purchase (or of one of its bundled items) start and end."""

    starts: datetime
    expires: datetime | None


@dataclass(frozen=True, slots=True)
class CreatedOrder:
    order: Order
    payment_client_secret: str | None


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


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    has_next_page: bool


class Orders:
    def __init__(
        self,
        *,
        offers: Offers,
        wallets: Wallets,
        payments: PaymentClient,
        clock: Clock,
        default_currency: str,
        limits: InputLimits = DEFAULT_INPUT_LIMITS,
        max_pending_orders: int = 20,
        sandbox: SandboxPaymentClient | None = None,
    ) -> None:
        """`sandbox`: the payment client when it is the sandbox, whose payments a caller
        may settle by hand (`settle_sandbox_payment`)."""
        self._limits = limits
        self._sandbox = sandbox
        self._max_pending_orders = max_pending_orders
        self._offers = offers
        self._wallets = wallets
        self._payments = payments
        self._clock = clock
        self._default_currency = default_currency
        self._orders = OrderDocument.get_pymongo_collection()

    # -- reads ---------------------------------------------------------------------------

    async def get_order(self, *, order_id: str, visible_to: Principal | None = None) -> Order:
        """The order; with `visible_to`, one that caller may not see is NotFound too, with
        the same message, so ids cannot be probed for their owners."""
        order = await self._one({"_id": object_id(order_id, "order")})
        if order is None or (visible_to is not None and not visible_to.may_see(order.user_id)):
            raise NotFound(f"order {order_id} does not exist")
        return order

    async def list_orders(
        self,
        *,
        user_id: str,
        status: OrderStatus | None = None,
        first: int = ORDERS_PAGE,
        after: str | None = None,
    ) -> OrderPage:
        """The user's orders, newest first; `after` is the last id of the previous page."""
        query: dict[str, Any] = {"user_id": user_id}
        if status is not None:
            query["status"] = status.value
        docs, more = await newest_first(
            self._orders, query, first=first, after=after, most=MAX_PAGE
        )
        return OrderPage(orders=[Order.model_validate(doc) for doc in docs], has_next_page=more)

    async def create_order(
        self,
        *,
        user_id: str,
        offer_id: str,
        quantity: int = 1,
        currency: str | None = None,
        idempotency_key: str | None = None,
        off_session: bool = False,
        order_id: str | None = None,
    ) -> CreatedOrder:
        """Orders `quantity` units of an offer the user can see. A free order is paid at once;
        a priced one waits for its payment, which is made now for the user to confirm, or
        `off_session` later by `charge_saved_card`. The same key returns the same order.
        `order_id`: the id to give it (an auto top-up's is its attempt's)."""
        if idempotency_key is not None:
            self._limits.key(idempotency_key)
            # An off-session order is a top-up's, keyed by its attempt.
            reserved = tuple(k for k in RESERVED_KEYS if not (off_session and k == TOP_UP_KEY))
            if idempotency_key.startswith(reserved):
                raise InvalidInput(
                    f"idempotency keys starting {' or '.join(map(repr, reserved))} are reserved"
                )
            existing = await self._by_key(user_id, idempotency_key)
            if existing is not None:
                return await self._replayed(existing, offer_id, quantity, currency)
        check_quantity(quantity)
        offer = await self._offers.ensure_available(user_id=user_id, offer_id=offer_id)
        total = await self.check_purchase(
            user_id=user_id, offer=offer, quantity=quantity, currency=currency
        )
        await self._make_room_for_pending(user_id)
        new = self._new_order(user_id, offer, quantity, total, idempotency_key, order_id)
        secret = None
        if total.minor_units > 0 and not off_session:
            payment = await self._payments.create_payment(
                order_id=str(new.id), user_id=user_id, amount=total
            )
            new.payment_intent_id = payment.id
            secret = payment.client_secret
        raced = await insert_keyed(new, idempotency_key, partial(self._by_key, user_id))
        if raced is not None:
            return await self._replayed(raced, offer_id, quantity, currency)
        order = Order.model_validate(new)
        if total.minor_units == 0:
            order = await self.apply_status(
                order_id=order.id, status=OrderStatus.PAID, message="free order"
            )
        return CreatedOrder(order=order, payment_client_secret=secret)

    def quote(self, offer: Offer, quantity: int, currency: str | None = None) -> Money:
        """What `quantity` units of the offer cost in `currency` (default: the service's),
        within the offer's quantity limit, what a balance can hold and what a total may
        be: the rules of an order, of a plan's period and of an auto top-up's purchase."""
        limit = min(offer.quantity_limit or MAX_QUANTITY, MAX_QUANTITY)
        if quantity > limit:
            raise QuantityLimit(
                f"offer {offer.id} sells at most {limit} per order, asked for {quantity}"
            )
        if offer.token_count * quantity > MAX_TOKENS:
            raise QuantityLimit(
                f"{quantity} x {offer.token_count} tokens is more than a balance can hold"
            )
        code = normalize_currency(currency or self._default_currency)
        price = offer.price_in(code)
        if price is None:
            sold = ", ".join(p.currency for p in offer.prices)
            raise InvalidInput(f"offer {offer.id} is not sold in {code}; it is sold in {sold}")
        if price.minor_units * quantity > MAX_MINOR_UNITS:
            raise QuantityLimit(
                f"{quantity} x {price.minor_units} {code} minor units is more than an order "
                f"may total ({MAX_MINOR_UNITS})"
            )
        return Money(minor_units=price.minor_units * quantity, currency=code)

    async def check_purchase(
        self,
        *,
        user_id: str,
        offer: Offer,
        quantity: int,
        currency: str | None = None,
        plan: bool = False,
    ) -> Money:
        """The quote, once the purchase could be credited were it paid now: its period and
        its bundled items' end by cycles.LATEST (PeriodTooLong), and no group it credits
        would hold more than a balance can (QuantityLimit). Checked before any payment;
        `plan`: a plan's, whose periods are one cycle each."""
        total = self.quote(offer, quantity, currency)
        now = self._clock.now()
        items = [
            (bundled, await self._offers.get_offer(offer_id=bundled.offer_id))
            for bundled in offer.combined_items
        ]
        if plan:
            own = Period(now, expiry(now, offer.cycle, 1, offer.custom_cycle_seconds))
        else:
            own = await self._period(offer, user_id, now, quantity, paid=False)
        credited = {offer.offer_group: offer.token_count * quantity}
        for bundled, item in items:
            await self._item_period(
                user_id, offer, bundled, item, own, quantity, plan=plan, paid=False
            )
            tokens = item.token_count * bundled.quantity * quantity
            credited[item.offer_group] = credited.get(item.offer_group, 0) + tokens
        for group, tokens in credited.items():
            await self._check_room(user_id, group, tokens)
        return total

    async def _check_room(self, user_id: str, offer_group: str, tokens: int) -> None:
        """QuantityLimit when crediting `tokens` would take the group past MAX_TOKENS."""
        balance = await self._wallets.balance(user_id=user_id, offer_group=offer_group)
        held = 0 if balance is None else balance.tokens + balance.reserved
        if tokens > 0 and held + tokens > MAX_TOKENS:
            raise QuantityLimit(
                f"user {user_id} holds {held} tokens in {offer_group!r}; {tokens} more would "
                f"pass the {MAX_TOKENS} a balance can hold"
            )

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
            now = self._clock.now()
            document = OrderDocument(
                id=ordered_id(now),
                user_id=plan.user_id,
                offer_id=plan.offer_id,
                offer_group=plan.offer_group,
                quantity=plan.quantity,
                token_count=plan.token_count,
                currency=invoice.amount.currency,
                total_minor_units=invoice.amount.minor_units,
                status=OrderStatus.PENDING,
                starts=invoice.period_start,
                expires=invoice.period_end,
                created_at=now,
                updated_at=now,
                history=[
                    OrderEvent(at=now, status=OrderStatus.PENDING, message=f"invoice {invoice.id}")
                ],
                plan_id=plan.id,
                idempotency_key=key,
            )
            raced = await insert_keyed(document, key, partial(self._by_key, plan.user_id))
            order = raced or Order.model_validate(document)  # made meanwhile: paid once
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

    async def _make_room_for_pending(self, user_id: str) -> None:
        """Cancels the user's oldest pending orders, with their payments, so that the new
        one is at most the `max_pending_orders`th: abandoned checkouts cannot pile up, and
        a canceled payment can no longer succeed."""
        pending = {"user_id": user_id, "status": OrderStatus.PENDING.value}
        excess = await self._orders.count_documents(pending) - self._max_pending_orders + 1
        if excess <= 0:
            return
        oldest = self._orders.find(pending, {"_id": 1, "idempotency_key": 1}).sort("_id", 1)
        async for doc in oldest.limit(excess):
            if is_service_key(doc.get("idempotency_key")):
                continue  # a top-up's charge or a paid invoice: settled by the service
            try:
                await self.cancel_order(
                    order_id=str(doc["_id"]),
                    message=f"canceled: more than {self._max_pending_orders} pending orders",
                )
            except DomainError as exc:  # it moved on meanwhile, or the provider refused
                log.warning(
                    "an old pending order was not canceled",
                    extra={"order_id": str(doc["_id"]), "error": exc.message},
                )

    def _new_order(
        self,
        user_id: str,
        offer: Offer,
        quantity: int,
        total: Money,
        key: str | None,
        order_id: str | None = None,
    ) -> OrderDocument:
        now = self._clock.now()
        return OrderDocument(
            id=ordered_id(now) if order_id is None else object_id(order_id, "order"),
            user_id=user_id,
            offer_id=offer.id,
            offer_group=offer.offer_group,
            quantity=quantity,
            token_count=offer.token_count * quantity,
            currency=total.currency,
            total_minor_units=total.minor_units,
            status=OrderStatus.PENDING,
            created_at=now,
            updated_at=now,
            history=[OrderEvent(at=now, status=OrderStatus.PENDING, message="created")],
            idempotency_key=key,
        )

    async def _by_key(self, user_id: str, key: str) -> Order | None:
        return await self._one({"user_id": user_id, "idempotency_key": key})

    async def _one(self, query: dict[str, Any]) -> Order | None:
        raw = await self._orders.find_one(query)
        return None if raw is None else Order.model_validate(raw)

    async def _replayed(
        self, order: Order, offer_id: str, quantity: int, currency: str | None
    ) -> CreatedOrder:
        check_same_purchase(order, order.idempotency_key, offer_id, quantity, currency)
        secret = None
        if order.payment_intent_id and order.status is OrderStatus.PENDING:
            secret = (await self._payments.get_payment(order.payment_intent_id)).client_secret
        return CreatedOrder(order=order, payment_client_secret=secret)

    # -- payment outcomes ----------------------------------------------------------------

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

    async def cancel_order(self, *, order_id: str, message: str = "canceled by the buyer") -> Order:
        """Cancels a pending order and its payment; any other status is a Conflict."""
        order = await self.get_order(order_id=order_id)
        if order.status is not OrderStatus.PENDING:
            raise OrderNotPending(
                f"order {order_id} is {order.status.value}; only a pending order can be canceled"
            )
        if order.plan_id is not None:
            raise OrderNotPending(
                f"order {order_id} is a paid period of plan {order.plan_id}: it is completed, "
                "not canceled (cancelPlan stops the plan)"
            )
        if order.payment_intent_id is not None:
            await self._payments.cancel_payment(order.payment_intent_id)
        return await self.apply_status(
            order_id=order_id, status=OrderStatus.CANCELED, message=message
        )

    async def apply_status(self, *, order_id: str, status: OrderStatus, message: str = "") -> Order:
        """Moves an order to `status` if its current status allows it; else changes nothing.

        PAID also credits the tokens and creates the bundle's child orders; REFUNDED takes
        back what is left of them. Each step is idempotent (a credit or a refund once per
        order, a child order once per item), and the status moves last, so an attempt cut
        short by a crash is completed, never doubled, by the next one (a webhook delivered
        again, refreshOrder, or the sweep's reconciliation).
        """
        if status is OrderStatus.PAID:
            await self._pay(order_id, message)
        elif status is OrderStatus.REFUNDED:
            await self._refund(order_id, message)
        else:
            await self._transition(order_id, status, message, {})
        return await self.get_order(order_id=order_id)

    async def _transition(
        self,
        order_id: str,
        status: OrderStatus,
        message: str,
        fields: dict[str, Any],
    ) -> bool:
        """One guarded update: True if this call made the transition."""
        now = self._clock.now()
        event = OrderEvent(at=now, status=status, message=message or status.value)
        result = await self._orders.update_one(
            {
                "_id": object_id(order_id, "order"),
                "status": {"$in": [s.value for s in _REACHABLE_FROM[status]]},
            },
            {
                "$set": {"status": status.value, "updated_at": now, **fields},
                "$push": {"history": event.model_dump()},
            },
        )
        return result.modified_count == 1

    async def _latest_expiry(self, user_id: str, offer_group: str) -> datetime | None:
        """The latest expiry among the user's paid orders in a group (appendDate's anchor)."""
        doc = await self._orders.find_one(
            {
                "user_id": user_id,
                "offer_group": offer_group,
                "status": OrderStatus.PAID.value,
                "expires": {"$ne": None},
            },
            sort=[("expires", -1)],
        )
        return None if doc is None else doc["expires"]

    async def _start(self, offer: Offer, user_id: str, base: datetime) -> datetime:
        """`base`, or with appendDate the later of it and the group's latest paid expiry."""
        if not offer.append_date:
            return base
        latest = await self._latest_expiry(user_id, offer.offer_group)
        return base if latest is None else max(base, latest)

    async def _period(
        self,
        offer: Offer,
        user_id: str,
        base: datetime,
        times: int,
        *,
        paid: bool,
        cycle: tuple[Cycle, int | None] | None = None,
    ) -> Period:
        """`times` cycles of the offer (or of `cycle`, with its custom seconds) from `base`,
        or with appendDate from the group's latest paid expiry if later; `paid`: an order
        already paid, which ends at cycles.LATEST at the latest, where a purchase being
        checked is refused."""
        starts = await self._start(offer, user_id, base)
        every, seconds = cycle or (offer.cycle, offer.custom_cycle_seconds)
        ends = paid_expiry if paid else expiry
        return Period(starts, ends(starts, every, times, seconds))

    async def _item_period(
        self,
        user_id: str,
        bundle: Offer,
        bundled: CombinedItem,
        item: Offer,
        bundle_period: Period,
        quantity: int,
        *,
        plan: bool,
        paid: bool,
    ) -> Period:
        """A bundled item's period: the item's own cycle if it has one, else the bundle's,
        times the bundles bought, from the bundle's start (or the item group's latest paid
        expiry, with the item's appendDate); a plan's period gives its items one cycle, or
        the period itself."""
        if plan and not bundled.cycle:
            starts = await self._start(item, user_id, bundle_period.starts)
            return Period(starts, bundle_period.expires)
        cycle = (
            (bundled.cycle, bundled.custom_cycle_seconds)
            if bundled.cycle
            else (bundle.cycle, bundle.custom_cycle_seconds)
        )
        times = 1 if plan else quantity  # a plan buys one period at a time
        return await self._period(
            item, user_id, bundle_period.starts, times, paid=paid, cycle=cycle
        )

    async def _pay(self, order_id: str, message: str) -> None:
        order = await self.get_order(order_id=order_id)
        if order.status not in _REACHABLE_FROM[OrderStatus.PAID]:
            return
        offer = await self._offers.get_offer(offer_id=order.offer_id)
        if order.plan_id is not None and order.starts is not None:
            period = Period(order.starts, order.expires)  # the invoice's period
        else:
            period = await self._period(
                offer, order.user_id, self._clock.now(), order.quantity, paid=True
            )
        if order.token_count > 0:
            await self._credit(order, period.starts, period.expires)
        for index, item in enumerate(offer.combined_items):
            await self._pay_child(order, offer, index, item, period)
        await self._transition(
            order_id,
            OrderStatus.PAID,
            message or "payment succeeded",
            {"starts": period.starts, "expires": period.expires},
        )

    async def _pay_child(
        self,
        parent: Order,
        bundle: Offer,
        index: int,
        bundled: CombinedItem,
        bundle_period: Period,
    ) -> None:
        """A paid, free child order per bundled item (once: its key names the parent and the
        item), crediting the item's group with the item's tokens x item quantity x bundles
        bought, for the item's period (`_item_period`)."""
        item = await self._offers.get_offer(offer_id=bundled.offer_id)
        period = await self._item_period(
            parent.user_id,
            bundle,
            bundled,
            item,
            bundle_period,
            parent.quantity,
            plan=parent.plan_id is not None,
            paid=True,
        )
        now = self._clock.now()
        key = f"{BUNDLE_KEY}{parent.id}:{index}"
        child = OrderDocument(
            id=ordered_id(now),
            user_id=parent.user_id,
            offer_id=bundled.offer_id,
            offer_group=item.offer_group,
            quantity=bundled.quantity * parent.quantity,
            token_count=item.token_count * bundled.quantity * parent.quantity,
            currency=parent.currency,
            total_minor_units=0,
            status=OrderStatus.PAID,
            starts=period.starts,
            expires=period.expires,
            created_at=now,
            updated_at=now,
            history=[
                OrderEvent(at=now, status=OrderStatus.PAID, message=f"bundled in order {parent.id}")
            ],
            parent_id=parent.id,
            idempotency_key=key,
        )
        raced = await insert_keyed(child, key, partial(self._by_key, parent.user_id))
        made = raced or Order.model_validate(child)
        if made.token_count > 0:
            await self._credit(made, made.starts or period.starts, made.expires)

    async def _credit(self, order: Order, starts: datetime, expires: datetime | None) -> None:
        await self._wallets.credit(
            Credit(
                user_id=order.user_id,
                offer_group=order.offer_group,
                tokens=order.token_count,
                starts=starts,
                expires=expires,
                reason=LedgerReason.PURCHASE,
                idempotency_key=f"order:{order.id}",
                order_id=order.id,
            )
        )

    async def _refund(self, order_id: str, message: str) -> None:
        """Takes back what is left of a paid order's lots (and its bundle's children's),
        then marks them refunded."""
        order = await self.get_order(order_id=order_id)
        if order.status not in _REACHABLE_FROM[OrderStatus.REFUNDED]:
            return
        children = [
            Order.model_validate(raw) async for raw in self._orders.find({"parent_id": order_id})
        ]
        for refunded in [order, *children]:
            if refunded.token_count > 0:
                await self._wallets.take_back(
                    user_id=refunded.user_id,
                    offer_group=refunded.offer_group,
                    tokens=refunded.token_count,
                    order_id=refunded.id,
                )
            if refunded is not order:
                await self._transition(
                    refunded.id, OrderStatus.REFUNDED, f"bundle order {order_id} refunded", {}
                )
        await self._transition(order_id, OrderStatus.REFUNDED, message or "refunded", {})

    async def expire_orders(self, *, now: datetime) -> int:
        """The sweep's order half: paid orders past their expiry become expired."""
        event = OrderEvent(at=now, status=OrderStatus.EXPIRED, message="period ended")
        result = await self._orders.update_many(
            {"status": OrderStatus.PAID.value, "expires": due_by(now)},
            {
                "$set": {"status": OrderStatus.EXPIRED.value, "updated_at": now},
                "$push": {"history": event.model_dump()},
            },
        )
        return result.modified_count
