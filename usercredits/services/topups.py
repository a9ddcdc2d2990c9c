"""Auto top-up: a rule per user and offer group buys an offer with the user's saved card,
off-session, when a movement leaves the group's spendable tokens at or below a threshold.
Its tokens are credited only when the payment succeeds (as any order's).

Top-ups that charge cards again and again are the known failure of this feature, so every
guard lives in the database, not in a process's memory:
- at most one attempt open per user and group: a partial unique index on the attempts
  (models/topup.py), so a burst of debits, or two server instances, make one charge;
- at most `max_per_month` charged attempts per calendar month (UTC);
- after a refusal (a decline, `authentication_required`, no card saved), no new attempt
  until the user's card differs or the rule is set again; `last_error` says why;
- an attempt's order is keyed by the attempt, and its payment by the order (the
  provider's idempotency key), so resuming an attempt a crash interrupted charges once.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from usercredits.models import AutoTopUpDocument, PaymentCustomerDocument, TopUpAttemptDocument
from usercredits.services.clock import Clock
from usercredits.services.errors import DomainError, Impossible, InvalidInput
from usercredits.services.limits import InputLimits
from usercredits.services.offers import Offers
from usercredits.services.orders import Orders, SavedCard
from usercredits.services.payments import Card, PaymentClient
from usercredits.services.wallets import Wallets
from usercredits.values import Order, OrderStatus
from usercredits.values.orders import TOP_UP_KEY

log = logging.getLogger(__name__)

MAX_PER_MONTH = 100
STALE_ATTEMPT = timedelta(minutes=2)
"""An open attempt without an order this old was interrupted (its process died): the next
trigger resumes it, with the same keys (the order's id is the attempt's, and the payment's
idempotency key the order's), so a payment the interrupted process made is not made again."""
NO_CARD = ""


@dataclass(frozen=True, slots=True)
class AutoTopUp:
    user_id: str
    offer_group: str
    offer_id: str
    quantity: int
    threshold: int
    max_per_month: int
    enabled: bool
    last_attempt_at: datetime | None
    last_order_id: str | None
    last_error: str | None


def _rule(raw: dict[str, Any]) -> AutoTopUp:
    return AutoTopUp(
        user_id=raw["user_id"],
        offer_group=raw["offer_group"],
        offer_id=raw["offer_id"],
        quantity=raw["quantity"],
        threshold=raw["threshold"],
        max_per_month=raw["max_per_month"],
        enabled=raw["enabled"],
        last_attempt_at=raw.get("last_attempt_at"),
        last_order_id=raw.get("last_order_id"),
        last_error=raw.get("last_error"),
    )


def _whole(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return value


class AutoTopUps:
    def __init__(
        self,
        *,
        orders: Orders,
        offers: Offers,
        wallets: Wallets,
        payments: PaymentClient,
        clock: Clock,
        limits: InputLimits,
    ) -> None:
        self._orders = orders
        self._offers = offers
        self._wallets = wallets
        self._payments = payments
        self._clock = clock
        self._limits = limits
        self._rules = AutoTopUpDocument.get_pymongo_collection
        self._attempts = TopUpAttemptDocument.get_pymongo_collection

    # -- the user's customer and cards ---------------------------------------------------

    async def customer(self, *, user_id: str) -> str:
        """The user's customer at the provider, made on first need."""
        customers = PaymentCustomerDocument.get_pymongo_collection()
        known = await customers.find_one({"_id": user_id})
        if known is not None:
            return str(known["customer_id"])
        made = await self._payments.create_customer(user_id=user_id)
        try:
            await customers.insert_one(
                {
                    "_id": user_id,
                    "provider": self._payments.name,
                    "customer_id": made,
                    "created_at": self._clock.now(),
                }
            )
        except DuplicateKeyError:  # made by a concurrent request (the same, by its key)
            raced = await customers.find_one({"_id": user_id})
            return made if raced is None else str(raced["customer_id"])
        return made

    async def setup_payment_method(self, *, user_id: str) -> str:
        """A client secret with which the front end saves a card for off-session use."""
        return await self._payments.setup_card(customer_id=await self.customer(user_id=user_id))

    async def payment_methods(self, *, user_id: str) -> list[Card]:
        known = await PaymentCustomerDocument.get_pymongo_collection().find_one({"_id": user_id})
        if known is None:
            return []
        return await self._payments.cards(customer_id=str(known["customer_id"]))

    # -- rules ---------------------------------------------------------------------------

    async def set_rule(
        self,
        *,
        user_id: str,
        offer_group: str,
        offer_id: str,
        quantity: int = 1,
        threshold: int,
        max_per_month: int = 5,
        enabled: bool = True,
    ) -> AutoTopUp:
        """Creates or replaces the user's rule for `offer_group`; a rule set again may try
        again after a refusal."""
        group = self._limits.group(offer_group)
        _whole(quantity, "quantity", 1, 1000)
        _whole(threshold, "threshold", 0, 2**53)
        _whole(max_per_month, "maxPerMonth", 1, MAX_PER_MONTH)
        offer = await self._offers.ensure_available(user_id=user_id, offer_id=offer_id)
        if offer.offer_group != group:
            raise InvalidInput(
                f"offer {offer_id} credits group {offer.offer_group!r}, not {group!r}: a "
                "top-up must refill the group it watches"
            )
        raw = await self._rules().find_one_and_update(
            {"user_id": user_id, "offer_group": group},
            {
                "$set": {
                    "offer_id": offer_id,
                    "quantity": quantity,
                    "threshold": threshold,
                    "max_per_month": max_per_month,
                    "enabled": enabled,
                    "updated_at": self._clock.now(),
                    "blocked_card": None,
                    "last_error": None,
                },
                "$inc": {"revision": 1},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            raise Impossible("an upsert returning its document returned none")
        return _rule(raw)

    async def rules(self, *, user_id: str) -> list[AutoTopUp]:
        cursor = self._rules().find({"user_id": user_id}).sort("offer_group", 1)
        return [_rule(raw) async for raw in cursor]

    async def thresholds(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The thresholds of the enabled rules among (user, group) pairs."""
        if not pairs:
            return {}
        cursor = self._rules().find(
            {
                "$or": [{"user_id": u, "offer_group": g} for u, g in pairs],
                "enabled": True,
            },
            {"user_id": 1, "offer_group": 1, "threshold": 1},
        )
        return {(r["user_id"], r["offer_group"]): r["threshold"] async for r in cursor}

    async def any_enabled(self) -> bool:
        return await self._rules().find_one({"enabled": True}, {"_id": 1}) is not None

    # -- the top-up itself ---------------------------------------------------------------

    async def top_up(self, *, user_id: str, offer_group: str) -> Order | None:
        """Buys the rule's offer if the group is at or below its threshold and every guard
        allows it; the order made, or None. Safe to call any number of times at once."""
        raw = await self._rules().find_one({"user_id": user_id, "offer_group": offer_group})
        if raw is None or not raw["enabled"]:
            return None
        balance = await self._wallets.balance(user_id=user_id, offer_group=offer_group)
        if balance is not None and balance.tokens > raw["threshold"]:
            return None
        in_flight, attempt = await self._open_attempt(user_id, offer_group)
        if in_flight:
            return None
        customer = await PaymentCustomerDocument.get_pymongo_collection().find_one({"_id": user_id})
        customer_id = None if customer is None else str(customer["customer_id"])
        cards = [] if customer_id is None else await self._payments.cards(customer_id=customer_id)
        card = cards[0].id if cards else NO_CARD
        if raw.get("blocked_card") == card and attempt is None:
            return None  # refused with this card, and neither card nor rule changed since
        if customer_id is None or not cards:
            await self._note(
                raw, error="no saved card: save one with setupPaymentMethod", card=card
            )
            return None
        month = self._clock.now().strftime("%Y-%m")
        if attempt is None:
            charged = await self._attempts().count_documents(
                {"user_id": user_id, "offer_group": offer_group, "month": month, "charged": True}
            )
            if charged >= raw["max_per_month"]:
                await self._note(
                    raw, error=f"the cap of {raw['max_per_month']} top-ups a month is reached"
                )
                return None
            attempt = await self._insert_attempt(user_id, offer_group, month)
            if attempt is None:
                return None  # another trigger opened one first
        return await self._charge(raw, attempt, SavedCard(customer_id, card))

    async def _charge(
        self, raw: dict[str, Any], attempt: ObjectId, card: SavedCard
    ) -> Order | None:
        try:
            created = await self._orders.create_order(
                user_id=raw["user_id"],
                offer_id=raw["offer_id"],
                quantity=raw["quantity"],
                idempotency_key=f"{TOP_UP_KEY}{attempt}",
                card=card,
                order_id=str(attempt),  # a resumed attempt charges with the same key
            )
        except DomainError as exc:  # the offer is gone, the provider cannot be reached
            await self._close(attempt, outcome="error", charged=False)
            await self._note(raw, error=exc.message)
            return None
        order = created.order
        await self._attempts().update_one({"_id": attempt}, {"$set": {"order_id": order.id}})
        if order.status is OrderStatus.PAID:
            await self._close(attempt, outcome=order.status.value, charged=True)
            await self._note(raw, order_id=order.id)
        elif order.status is OrderStatus.PENDING:
            # Processing at the provider: it stays open (and counted) until the payment's
            # outcome settles the order; the next trigger looks again.
            await self._attempts().update_one({"_id": attempt}, {"$set": {"charged": True}})
            await self._note(raw, order_id=order.id)
        else:
            await self._close(attempt, outcome=order.status.value, charged=False)
            reason = created.decline_code or order.status.value.lower()
            await self._note(
                raw,
                order_id=order.id,
                error=f"{reason}: {order.history[-1].message}",
                card=card.card_id,
            )
        return order

    async def _open_attempt(self, user_id: str, offer_group: str) -> tuple[bool, ObjectId | None]:
        """Whether an attempt is in flight, and the open attempt to resume (one a crash
        interrupted). An open attempt whose order has settled is closed."""
        open_ = await self._attempts().find_one(
            {"user_id": user_id, "offer_group": offer_group, "open": True}
        )
        if open_ is None:
            return False, None
        if open_.get("order_id") is None:
            # Interrupted if this old: one caller takes it over (by renewing its time).
            now = self._clock.now()
            claimed = await self._attempts().update_one(
                {"_id": open_["_id"], "open": True, "created_at": {"$lte": now - STALE_ATTEMPT}},
                {"$set": {"created_at": now}},
            )
            return (False, open_["_id"]) if claimed.modified_count else (True, None)
        order = await self._orders.get_order(order_id=open_["order_id"])
        if order.status is OrderStatus.PENDING:
            return True, None
        await self._close(
            open_["_id"], outcome=order.status.value, charged=order.status is OrderStatus.PAID
        )
        return False, None

    async def _insert_attempt(self, user_id: str, offer_group: str, month: str) -> ObjectId | None:
        attempt = ObjectId()
        try:
            await self._attempts().insert_one(
                {
                    "_id": attempt,
                    "user_id": user_id,
                    "offer_group": offer_group,
                    "open": True,
                    "month": month,
                    "charged": False,
                    "created_at": self._clock.now(),
                }
            )
        except DuplicateKeyError:
            return None
        return attempt

    async def _close(self, attempt: ObjectId, *, outcome: str, charged: bool) -> None:
        await self._attempts().update_one(
            {"_id": attempt, "open": True},
            {"$set": {"open": False, "outcome": outcome, "charged": charged}},
        )

    async def _note(
        self,
        raw: dict[str, Any],
        *,
        order_id: str | None = None,
        error: str | None = None,
        card: str | None = None,
    ) -> None:
        """Records an attempt's outcome on the rule, unless the rule changed meanwhile."""
        fields: dict[str, Any] = {"last_attempt_at": self._clock.now(), "last_error": error}
        if order_id is not None:
            fields["last_order_id"] = order_id
        fields["blocked_card"] = card
        if error is not None:
            log.info(
                "auto top-up refused",
                extra={
                    "user_id": raw["user_id"],
                    "offer_group": raw["offer_group"],
                    "error": error,
                },
            )
        # Not again when nothing changed (every debit under a reached cap would write).
        unchanged = {"last_error": error, "blocked_card": card, "last_order_id": order_id}
        await self._rules().update_one(
            {
                "_id": raw["_id"],
                "revision": raw["revision"],
                "$nor": [
                    unchanged
                    if order_id is not None
                    else {"last_error": error, "blocked_card": card}
                ],
            },
            {"$set": fields},
        )
