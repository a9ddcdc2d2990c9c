"""Buying: a user's orders, an order made or canceled, and the checks a purchase passes
before any payment, which plans and auto top-ups ask too. No GraphQL, no HTTP."""

import logging
from dataclasses import dataclass
from typing import Any

from usercredits.services.catalogue.cycles import expiry, renewal_interval
from usercredits.services.errors import (
    DomainError,
    InvalidInput,
    KeyReused,
    OrderNotPending,
    QuantityLimit,
)
from usercredits.services.money import Money, normalize_currency
from usercredits.services.orders.base import OrdersBase, Period, order_document
from usercredits.services.pages import newest_first
from usercredits.values import Offer, OfferKind, Order, OrderStatus
from usercredits.values.lots import MAX_TOKENS
from usercredits.values.numbers import is_whole
from usercredits.values.offers import MAX_MINOR_UNITS
from usercredits.values.orders import RESERVED_KEYS, TOP_UP_KEY, Purchase, is_service_key

log = logging.getLogger(__name__)

MAX_QUANTITY = 10_000
MAX_PAGE = 200
ORDERS_PAGE = 20
"""Orders in a page when the caller does not say."""


def check_quantity(quantity: object) -> None:
    if not is_whole(quantity) or quantity < 1:
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
class CreatedOrder:
    order: Order
    payment_client_secret: str | None


@dataclass(frozen=True, slots=True)
class Priced:
    """An offer the user may buy now, and what `quantity` of it costs."""

    offer: Offer
    total: Money


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    has_next_page: bool


class Buying(OrdersBase):
    """What a buyer asks: orders made, canceled and listed, and a purchase's checks."""

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
        priced = await self.priced(
            user_id=user_id, offer_id=offer_id, quantity=quantity, currency=currency
        )
        offer, total = priced.offer, priced.total
        await self._make_room_for_pending(user_id)
        new = order_document(
            now=self._clock.now(),
            user_id=user_id,
            offer_id=offer.id,
            offer_group=offer.offer_group,
            quantity=quantity,
            token_count=offer.token_count * quantity,
            total=total,
            status=OrderStatus.PENDING,
            message="created",
            key=idempotency_key,
            order_id=order_id,
        )
        secret = None
        if total.minor_units > 0 and not off_session:
            payment = await self._payments.create_payment(
                order_id=str(new.id), user_id=user_id, amount=total
            )
            new.payment_intent_id = payment.id
            secret = payment.client_secret
        raced = await self._insert_keyed(new)
        if raced is not None:
            return await self._replayed(raced, offer_id, quantity, currency)
        order = Order.model_validate(new)
        if total.minor_units == 0:
            order = await self.apply_status(
                order_id=order.id, status=OrderStatus.PAID, message="free order"
            )
        return CreatedOrder(order=order, payment_client_secret=secret)

    async def _replayed(
        self, order: Order, offer_id: str, quantity: int, currency: str | None
    ) -> CreatedOrder:
        check_same_purchase(order, order.idempotency_key, offer_id, quantity, currency)
        secret = None
        if order.payment_intent_id and order.status is OrderStatus.PENDING:
            secret = (await self._payments.get_payment(order.payment_intent_id)).client_secret
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

    async def priced(
        self,
        *,
        user_id: str,
        offer_id: str,
        quantity: int,
        currency: str | None = None,
        plan: bool = False,
    ) -> Priced:
        """The checks every purchase starts with (an order, a plan, an auto top-up's rule):
        the offer is on sale to the user (OfferNotAvailable), a plan's renews, and the
        purchase could be credited were it paid now (`check_purchase`)."""
        offer = await self._offers.ensure_available(user_id=user_id, offer_id=offer_id)
        if plan:
            if offer.kind is not OfferKind.SUBSCRIPTION:
                raise InvalidInput(
                    f"offer {offer_id} is a {offer.kind.name} offer; only a SUBSCRIPTION renews"
                )
            renewal_interval(offer.cycle, offer.custom_cycle_seconds)  # it must renew
        total = await self.check_purchase(
            user_id=user_id, offer=offer, quantity=quantity, currency=currency, plan=plan
        )
        return Priced(offer=offer, total=total)

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
