"""What every caller of orders shares: reading an order, the one builder of order
documents, guarded status transitions, and paying or refunding an order (its period, its
credit, its bundle's child orders). No GraphQL, no HTTP.

Status transitions are guarded updates, so an outcome applied twice (a retried webhook, a
refresh racing a webhook) changes nothing the second time, and a late failure never undoes
a success. Paying an order is three steps, each once whatever repeats it: the wallet credit
(keyed by the order), the bundle's child orders (keyed by the order and the item), then the
PAID status. There is no transaction: a payment cut short between them is completed by the
next application of the outcome (a retried webhook, the sweep's reconciliation), which does
again only what is missing.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from usercredits.models import OrderDocument, ProcessedEvent
from usercredits.models.collections import Collection, insert
from usercredits.services.catalogue.cycles import expiry, paid_expiry
from usercredits.services.catalogue.offers import Offers
from usercredits.services.clock import Clock
from usercredits.services.errors import NotFound
from usercredits.services.identity.access import Principal
from usercredits.services.ids import object_id, ordered_id
from usercredits.services.limits import DEFAULT_INPUT_LIMITS, InputLimits
from usercredits.services.money import Money
from usercredits.services.payments import PaymentClient, SandboxPaymentClient
from usercredits.services.wallets import Wallets
from usercredits.services.wallets.credits import Credit
from usercredits.services.writes import insert_keyed
from usercredits.values import (
    CombinedItem,
    Cycle,
    LedgerReason,
    Offer,
    Order,
    OrderStatus,
    StatusChange,
)
from usercredits.values.orders import BUNDLE_KEY

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


@dataclass(frozen=True, slots=True)
class Period:
    """When the tokens of a purchase (or of one of its bundled items) start and end."""

    starts: datetime
    expires: datetime | None


def order_document(
    *,
    now: datetime,
    user_id: str,
    offer_id: str,
    offer_group: str,
    quantity: int,
    token_count: int,
    total: Money,
    status: OrderStatus,
    message: str,
    key: str | None,
    order_id: str | None = None,
    starts: datetime | None = None,
    expires: datetime | None = None,
    plan_id: str | None = None,
    parent_id: str | None = None,
) -> OrderDocument:
    """The one builder of an order's document: a buyer's, a plan's period's or a bundled
    item's, made at `now` with its first history step (`status`, `message`)."""
    return OrderDocument(
        id=ordered_id(now) if order_id is None else object_id(order_id, "order"),
        user_id=user_id,
        offer_id=offer_id,
        offer_group=offer_group,
        quantity=quantity,
        token_count=token_count,
        currency=total.currency,
        total_minor_units=total.minor_units,
        status=status,
        starts=starts,
        expires=expires,
        created_at=now,
        updated_at=now,
        history=[StatusChange[OrderStatus](at=now, status=status, message=message)],
        plan_id=plan_id,
        parent_id=parent_id,
        idempotency_key=key,
    )


class OrdersBase:
    """The order documents and what every caller does with them."""

    def __init__(
        self,
        *,
        orders: Collection,
        payment_events: Collection,
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
        may settle by hand (`settle_sandbox_payment`); `payment_events`: the provider's
        events already applied (`event_processed`)."""
        self._limits = limits
        self._sandbox = sandbox
        self._max_pending_orders = max_pending_orders
        self._offers = offers
        self._wallets = wallets
        self._payments = payments
        self._clock = clock
        self._default_currency = default_currency
        self._orders = orders
        self._payment_events = payment_events

    async def get_order(self, *, order_id: str, visible_to: Principal | None = None) -> Order:
        """The order; with `visible_to`, one that caller may not see is NotFound too, with
        the same message, so ids cannot be probed for their owners."""
        order = await self._one({"_id": object_id(order_id, "order")})
        if order is None or (visible_to is not None and not visible_to.may_see(order.user_id)):
            raise NotFound(f"order {order_id} does not exist")
        return order

    async def _by_key(self, user_id: str, key: str) -> Order | None:
        return await self._one({"user_id": user_id, "idempotency_key": key})

    async def _insert_keyed(self, document: OrderDocument) -> Order | None:
        """Inserts an order unique by its user's idempotency key: None once it is in; the
        order a concurrent request made under the key first, if one did."""
        key = document.idempotency_key
        return await insert_keyed(
            self._orders, document, key, partial(self._by_key, document.user_id)
        )

    async def event_processed(self, *, event_id: str) -> bool:
        """Whether the payment provider's event `event_id` was applied already."""
        return await self._payment_events.find_one({"_id": event_id}) is not None

    async def record_event(self, event: ProcessedEvent) -> None:
        """Notes that a provider's event was applied; DuplicateKeyError if it was already."""
        await insert(self._payment_events, event)

    async def _one(self, query: dict[str, Any]) -> Order | None:
        raw = await self._orders.find_one(query)
        return None if raw is None else Order.model_validate(raw)

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
        self, order_id: str, status: OrderStatus, message: str, fields: dict[str, Any]
    ) -> bool:
        """One guarded update: True if this call made the transition."""
        now = self._clock.now()
        event = StatusChange[OrderStatus](at=now, status=status, message=message or status.value)
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
        self, parent: Order, bundle: Offer, index: int, bundled: CombinedItem, bundle_period: Period
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
        key = f"{BUNDLE_KEY}{parent.id}:{index}"
        child = order_document(
            now=self._clock.now(),
            user_id=parent.user_id,
            offer_id=bundled.offer_id,
            offer_group=item.offer_group,
            quantity=bundled.quantity * parent.quantity,
            token_count=item.token_count * bundled.quantity * parent.quantity,
            total=Money(0, parent.currency),
            status=OrderStatus.PAID,
            message=f"bundled in order {parent.id}",
            key=key,
            starts=period.starts,
            expires=period.expires,
            parent_id=parent.id,
        )
        made = await self._insert_keyed(child) or Order.model_validate(child)
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
