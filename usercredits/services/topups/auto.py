"""Auto top-up: a rule per user and offer group buys an offer with the user's saved card,
off-session, when a movement leaves the group's spendable tokens at or below a threshold.
Its tokens are credited only when the payment succeeds (as any order's).

Top-ups that charge cards again and again are the known failure of this feature, so every
guard lives in the database, not in a process's memory:
- at most one attempt open per user and group: a partial unique index on the attempts
  (models/topup.py), so a burst of debits, or two server instances, make one charge;
- at most `max_per_month` charged attempts per calendar month (UTC), each costing at most
  the service's cap per top-up, and together at most its cap per month (`TopUpCaps`, set by
  the server's settings), or the rule's own `max_amount_per_month` if lower;
- a threshold below the tokens one top-up buys, so each top-up lifts an empty group above
  it: a rule cannot make every debit a charge;
- after a refusal (a decline, `authentication_required`, no card saved), no new attempt
  until the user's card differs or the rule is set again; `last_error` says why;
- an attempt's order is keyed by the attempt, and its payment by the order (the
  provider's idempotency key), so resuming an attempt a crash interrupted charges once;
  the rule records the attempt's order before the charge, so it shows even when the
  charge's answer is lost (the provider's signed event then settles the order).
Each rule records who set it (`set_by`: a user's id, or `apikey:<id>`).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pydantic import BaseModel, ConfigDict, Field
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from usercredits.models.collections import Collection, Raw
from usercredits.models.topup import AttemptFields, AttemptOutcome
from usercredits.services.catalogue.offers import Offers
from usercredits.services.clock import Clock
from usercredits.services.errors import DomainError, Impossible, InvalidInput, PaymentFailed
from usercredits.services.ids import ordered_id
from usercredits.services.limits import InputLimits
from usercredits.services.money import Money, normalize_currency
from usercredits.services.orders import Orders
from usercredits.services.orders.recurring import SavedCard
from usercredits.services.payments import Card, CardsOnFile
from usercredits.services.payments.customers import PaymentCustomers
from usercredits.services.steps import Swept, each
from usercredits.services.wallets import Wallets
from usercredits.values import Order, OrderStatus, Price
from usercredits.values.numbers import is_whole
from usercredits.values.orders import TOP_UP_KEY
from usercredits.values.topups import AutoTopUp, AutoTopUpFields

log = logging.getLogger(__name__)

MAX_PER_MONTH = 100
STALE_ATTEMPT = timedelta(minutes=10)
"""An attempt open this long was interrupted (its process died, or the provider did not
answer): the sweep, or the next trigger, carries it on with the same card, amount and keys
(the order's id is the attempt's, the payment's idempotency key the order's), so a payment
already made is not made again. Longer than the Stripe client's own retries take."""
NO_CARD = ""
MAX_AMOUNT = "500"
"""The most one top-up may charge, in the service's currency, unless the server's settings
say otherwise (USERCREDITS_TOP_UP_MAX_AMOUNT)."""
MAX_AMOUNT_PER_MONTH = "1000"
"""The most a rule's top-ups may charge in a calendar month (UTC), in the service's
currency, unless the settings say otherwise (USERCREDITS_TOP_UP_MAX_AMOUNT_PER_MONTH)."""


@dataclass(frozen=True, slots=True)
class TopUpCaps:
    """What auto top-ups may charge a card, whoever set the rule (a service key may set any
    user's): per top-up, and per rule and calendar month (UTC), in the currency top-ups are
    charged in (the service's)."""

    per_top_up: Money
    per_month: Money

    @classmethod
    def of(
        cls, currency: str, per_top_up: str = MAX_AMOUNT, per_month: str = MAX_AMOUNT_PER_MONTH
    ) -> "TopUpCaps":
        """The caps, stated as decimal amounts of `currency`."""
        return cls(Money.parse(per_top_up, currency), Money.parse(per_month, currency))


class _Read(BaseModel):
    """A document of this module's collections as the top-up reads it: frozen, by `_id`."""

    model_config = ConfigDict(
        frozen=True, validate_by_alias=True, validate_by_name=True, arbitrary_types_allowed=True
    )

    id: ObjectId = Field(alias="_id")


class Rule(_Read, AutoTopUpFields):
    """A rule as the top-up reads it: what it buys, its caps, and whether a refusal blocks
    it (callers are shown `AutoTopUp`)."""

    revision: int
    """Bumped by every change of the rule: an outcome is recorded only on the revision it
    was decided for."""
    blocked_card: str | None = None
    """Set after a refusal: the card it happened with ("" for none)."""
    blocked_at: datetime | None = None


class Attempt(_Read, AttemptFields):
    """One attempt as stored (models/topup.py's `TopUpAttemptDocument`)."""


@dataclass(frozen=True, slots=True)
class Customer:
    """The user's customer at the provider, as the top-up reads it."""

    customer_id: str
    setup_at: datetime | None
    """The latest SetupIntent made for the user: a card may have been saved since."""

    @classmethod
    def of(cls, raw: Raw) -> "Customer":
        return cls(customer_id=str(raw["customer_id"]), setup_at=raw.get("setup_at"))


def _exceeds(amount: Money, cap: Money) -> bool:
    return amount.currency != cap.currency or amount.minor_units > cap.minor_units


def _whole(value: object, what: str, low: int, high: int) -> int:
    if not is_whole(value) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return value


class AutoTopUps:
    def __init__(
        self,
        *,
        rules: Collection,
        attempts: Collection,
        customer_records: Collection,
        orders: Orders,
        offers: Offers,
        wallets: Wallets,
        payments: CardsOnFile,
        customers: PaymentCustomers,
        clock: Clock,
        limits: InputLimits,
        caps: TopUpCaps,
    ) -> None:
        self._caps = caps
        self._customers = customers
        self._orders = orders
        self._offers = offers
        self._wallets = wallets
        self._payments = payments
        self._clock = clock
        self._limits = limits
        self._rules = rules
        self._attempts = attempts
        self._customer_records = customer_records

    # -- the user's customer and cards ---------------------------------------------------

    async def setup_payment_method(self, *, user_id: str) -> str:
        """A client secret with which the front end saves a card for off-session use. Its
        time is kept: a rule blocked by a refused card looks at the cards again only after
        one."""
        customer_id = await self._customers.customer(user_id=user_id)
        secret = await self._payments.setup_card(customer_id=customer_id)
        await self._customer_records.update_one(
            {"_id": user_id}, {"$set": {"setup_at": self._clock.now()}}
        )
        return secret

    async def payment_methods(self, *, user_id: str) -> list[Card]:
        known = await self._customer_records.find_one({"_id": user_id})
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
        max_amount_per_month: Money | None = None,
        enabled: bool = True,
        set_by: str,
    ) -> AutoTopUp:
        """Creates or replaces the user's rule for `offer_group` (a rule set again may try
        again after a refusal), and tops the group up at once if it is low already.
        `set_by`: who asks (the user, or the service or admin acting for it)."""
        group = self._limits.group(offer_group)
        _whole(quantity, "quantity", 1, 1000)
        _whole(threshold, "threshold", 0, 2**53)
        _whole(max_per_month, "maxPerMonth", 1, MAX_PER_MONTH)
        own_cap = None if max_amount_per_month is None else self._own_cap(max_amount_per_month)
        # A rule its first top-up could not buy is refused.
        priced = await self._orders.priced(user_id=user_id, offer_id=offer_id, quantity=quantity)
        offer, price = priced.offer, priced.total
        if offer.offer_group != group:
            raise InvalidInput(
                f"offer {offer_id} credits group {offer.offer_group!r}, not {group!r}: a "
                "top-up must refill the group it watches"
            )
        bought = offer.token_count * quantity
        if threshold >= bought:
            raise InvalidInput(
                f"threshold must be below the {bought} tokens one top-up buys, got "
                f"{threshold}: each top-up must lift an empty group above it"
            )
        self._check_price(price, own_cap)
        raw = await self._rules.find_one_and_update(
            {"user_id": user_id, "offer_group": group},
            {
                "$set": {
                    "offer_id": offer_id,
                    "quantity": quantity,
                    "threshold": threshold,
                    "max_per_month": max_per_month,
                    "max_amount_per_month": None if own_cap is None else own_cap.model_dump(),
                    "enabled": enabled,
                    "set_by": set_by,
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
        # A group already at or below the new threshold is topped up now: no movement
        # may come to trigger it. The rule is read again for what the attempt recorded.
        await self.top_up(user_id=user_id, offer_group=group)
        return AutoTopUp.model_validate(await self._rules.find_one({"_id": raw["_id"]}) or raw)

    def _own_cap(self, stated: Money) -> Price:
        """A rule's own monthly cap: in the service's currency, above 0, and at most the
        service's (a rule may only lower it)."""
        cap = self._caps.per_month
        amount = Money(stated.minor_units, normalize_currency(stated.currency))
        if amount.currency != cap.currency or not 0 < amount.minor_units <= cap.minor_units:
            raise InvalidInput(
                f"maxAmountPerMonth must be above 0 and at most {cap.amount} {cap.currency} "
                f"(top-ups are charged in {cap.currency}), got {amount.amount} {amount.currency}"
            )
        return Price(currency=amount.currency, minor_units=amount.minor_units)

    def _check_price(self, price: Money, own_cap: Price | None) -> None:
        """InvalidInput when one top-up would cost more than a top-up, or a month of them,
        may."""
        for cap, what in (
            (self._caps.per_top_up, "one top-up"),
            (self._month_cap(own_cap), "a month of top-ups"),
        ):
            if _exceeds(price, cap):
                raise InvalidInput(
                    f"a top-up costs {price.amount} {price.currency}; {what} may charge at "
                    f"most {cap.amount} {cap.currency}"
                )

    def _month_cap(self, own: Price | None) -> Money:
        """The service's cap per month, or the rule's own if lower (one in another currency,
        from before the service's changed, lets nothing be charged)."""
        cap = self._caps.per_month
        if own is None:
            return cap
        mine = Money(own.minor_units, own.currency)
        return mine if mine.currency != cap.currency or mine.minor_units < cap.minor_units else cap

    async def rules(self, *, user_id: str) -> list[AutoTopUp]:
        cursor = self._rules.find({"user_id": user_id}).sort("offer_group", 1)
        return [AutoTopUp.model_validate(raw) async for raw in cursor]

    async def thresholds(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The thresholds of the enabled rules among (user, group) pairs."""
        if not pairs:
            return {}
        cursor = self._rules.find(
            {
                "$or": [{"user_id": u, "offer_group": g} for u, g in pairs],
                "enabled": True,
            },
            {"user_id": 1, "offer_group": 1, "threshold": 1},
        )
        return {(r["user_id"], r["offer_group"]): r["threshold"] async for r in cursor}

    async def any_enabled(self) -> bool:
        return await self._rules.find_one({"enabled": True}, {"_id": 1}) is not None

    # -- the top-up itself ---------------------------------------------------------------

    async def top_up(self, *, user_id: str, offer_group: str) -> Order | None:
        """Buys the rule's offer if the group is at or below its threshold and every guard
        allows it; the order made, or None. Safe to call any number of times at once, from
        any number of processes."""
        rule = await self._rule({"user_id": user_id, "offer_group": offer_group})
        if rule is None or not rule.enabled or not await self._low(rule):
            return None
        go_on, stale = await self._open_attempt(rule)
        if not go_on:
            return None
        if stale is not None:
            return await self._resume(rule, stale)
        known = await self._customer_records.find_one({"_id": user_id})
        customer = None if known is None else Customer.of(known)
        if rule.blocked_card is not None and not _card_may_differ(rule, customer):
            return None  # refused, and no card saved since: no call to the provider
        month = self._clock.now().strftime("%Y-%m")
        refusal = await self._refusal(rule, month)
        if refusal is not None:
            await self._note(rule, error=refusal)
            return None
        attempt = await self._insert_attempt(rule, month)
        if attempt is None:
            return None  # another caller claimed it first
        # Checked again now that this attempt holds the claim: another caller's whole
        # attempt (and its refusal) may have run between the first checks and the claim.
        fresh = await self._rule({"_id": rule.id})
        if (
            fresh is None
            or not fresh.enabled
            or (fresh.blocked_card is not None and not _card_may_differ(fresh, customer))
            or not await self._low(fresh)
        ):
            await self._close(attempt, outcome=AttemptOutcome.NOT_NEEDED, charged=False)
            return None
        return await self._order_and_charge(fresh, attempt, customer, month)

    async def _rule(self, query: Raw) -> Rule | None:
        raw = await self._rules.find_one(query)
        return None if raw is None else Rule.model_validate(raw)

    async def _refusal(self, rule: Rule, month: str, amount: Money | None = None) -> str | None:
        """Why the rule may not charge `amount` (default: what its top-up costs now) this
        month, if it may not: its cap of top-ups, the service's cap per top-up, or the cap
        per month (the service's, or the rule's own if lower)."""
        if amount is None:
            try:
                offer = await self._offers.get_offer(offer_id=rule.offer_id)
                amount = self._orders.quote(offer, rule.quantity)
            except DomainError as exc:  # the offer changed: its order would be refused
                return exc.message
        charged, spent = await self._charged(rule, month)
        if charged >= rule.max_per_month:
            return f"the cap of {rule.max_per_month} top-ups a month is reached"
        per_top_up = self._caps.per_top_up
        if _exceeds(amount, per_top_up):
            return (
                f"a top-up costs {amount.amount} {amount.currency}, more than the "
                f"{per_top_up.amount} {per_top_up.currency} one may charge"
            )
        cap = self._month_cap(rule.max_amount_per_month)
        if _exceeds(Money(spent + amount.minor_units, amount.currency), cap):
            return (
                f"the cap of {cap.amount} {cap.currency} of top-ups a month is reached "
                f"({Money(spent, cap.currency).amount} charged, the next costs {amount.amount})"
            )
        return None

    async def _order_and_charge(
        self, rule: Rule, attempt: ObjectId, customer: Customer | None, month: str
    ) -> Order | None:
        customer_id = None if customer is None else customer.customer_id
        cards = [] if customer_id is None else await self._payments.cards(customer_id=customer_id)
        card = cards[0].id if cards else NO_CARD
        if customer_id is None or not cards or card == rule.blocked_card:
            await self._close(attempt, outcome=AttemptOutcome.NO_USABLE_CARD, charged=False)
            error = rule.last_error if cards else None
            await self._note(
                rule, error=error or "no saved card: save one with setupPaymentMethod", card=card
            )
            return None
        saved = SavedCard(customer_id, card)
        # What the charge needs is stored before it is made: a resumed attempt charges the
        # same card the same amount under the same key.
        await self._attempts.update_one(
            {"_id": attempt}, {"$set": {"customer_id": customer_id, "card_id": card}}
        )
        try:
            created = await self._orders.create_order(
                user_id=rule.user_id,
                offer_id=rule.offer_id,
                quantity=rule.quantity,
                idempotency_key=f"{TOP_UP_KEY}{attempt}",
                off_session=True,
                order_id=str(attempt),
            )
        except DomainError as exc:  # the offer is gone or not sold: wait for a new rule
            await self._close(attempt, outcome=AttemptOutcome.REFUSED, charged=False)
            await self._note(rule, error=exc.message, card=card)
            return None
        order = created.order
        total = Money(order.total_minor_units, order.currency)
        # Checked again on what the order costs: another attempt may have been charged, or
        # the price changed, since the first look.
        refusal = await self._refusal(rule, month, total)
        if refusal is not None:
            await self._orders.cancel_order(order_id=order.id, message=refusal)
            await self._close(attempt, outcome=AttemptOutcome.OVER_A_CAP, charged=False)
            await self._note(rule, error=refusal)
            return None
        await self._attempts.update_one(
            {"_id": attempt},
            {
                "$set": {
                    "order_id": order.id,
                    "amount_minor_units": total.minor_units,
                    "currency": total.currency,
                }
            },
        )
        # The rule shows the attempt before the charge, whose answer may be lost.
        await self._note(rule, order_id=order.id)
        return await self._charge(rule, attempt, saved)

    async def _charge(self, rule: Rule, attempt: ObjectId, card: SavedCard) -> Order | None:
        try:
            charged = await self._orders.charge_saved_card(order_id=str(attempt), card=card)
        except PaymentFailed as exc:
            # The provider did not answer: the charge may have been made. The attempt stays
            # open, and is resumed with the same key (services/sweep.py's sweep, or the
            # next trigger once it is stale).
            log.warning(
                "auto top-up charge unanswered; it will be resumed",
                extra={"attempt": str(attempt), "error": exc.message},
            )
            return None
        order = charged.order
        if order.status is OrderStatus.PENDING:
            # Processing at the provider: it stays open (and counted) until the payment's
            # outcome settles the order.
            await self._attempts.update_one({"_id": attempt}, {"$set": {"charged": True}})
            await self._note(rule, order_id=order.id)
        else:
            await self._settled(rule, attempt, order, card.card_id, charged.decline_code)
        return order

    async def _settled(
        self,
        rule: Rule,
        attempt: ObjectId,
        order: Order,
        card: str | None,
        decline_code: str | None = None,
    ) -> None:
        """Closes an attempt whose order settled, and records the outcome on the rule."""
        took_money = order.status in _CHARGED
        outcome = AttemptOutcome(order.status.value)
        await self._close(attempt, outcome=outcome, charged=took_money)
        if took_money:
            await self._note(rule, order_id=order.id)
            return
        reason = decline_code or order.status.value
        message = order.history[-1].message if order.history else ""
        await self._note(rule, order_id=order.id, error=f"{reason}: {message}", card=card or "")

    async def _resume(self, rule: Rule, attempt: Attempt) -> Order | None:
        """Carries on an attempt a process left open: with its stored card and order."""
        if attempt.card_id is None or attempt.order_id is None:
            # Stopped before any charge could be made (the card is stored first).
            await self._close(attempt.id, outcome=AttemptOutcome.INTERRUPTED, charged=False)
            return None
        if attempt.customer_id is None:
            raise Impossible(f"top-up attempt {attempt.id} stored its card without its customer")
        card = SavedCard(attempt.customer_id, attempt.card_id)
        return await self._charge(rule, attempt.id, card)

    async def resume_stale(self) -> Swept:
        """The sweep's part: carries on every attempt left open longer than STALE_ATTEMPT
        (well within the provider's 24 hours of idempotency). `done`: how many; one that
        cannot be carried on is logged and skipped."""
        cursor = self._attempts.find(
            {"open": True, "created_at": {"$lte": self._clock.now() - STALE_ATTEMPT}},
            {"user_id": 1, "offer_group": 1},
        )

        async def resume(doc: Raw) -> bool:
            rule = await self._rule({"user_id": doc["user_id"], "offer_group": doc["offer_group"]})
            if rule is None:
                return False
            _, stale = await self._open_attempt(rule)
            if stale is None:
                return False
            await self._resume(rule, stale)
            return True

        return await each(cursor, resume, what="top-up attempt")

    async def _low(self, rule: Rule) -> bool:
        balance = await self._wallets.balance(user_id=rule.user_id, offer_group=rule.offer_group)
        return balance is None or balance.tokens <= rule.threshold

    async def _charged(self, rule: Rule, month: str) -> tuple[int, int]:
        """The rule's charged attempts this month, and what they cost together in minor
        units of the capped currency."""
        cursor = self._attempts.find(
            {
                "user_id": rule.user_id,
                "offer_group": rule.offer_group,
                "month": month,
                "charged": True,
            },
            {"amount_minor_units": 1, "currency": 1},
        )
        charged = [doc async for doc in cursor]
        currency = self._caps.per_month.currency
        spent = sum(
            d.get("amount_minor_units", 0) for d in charged if d.get("currency") == currency
        )
        return len(charged), spent

    async def _open_attempt(self, rule: Rule) -> tuple[bool, Attempt | None]:
        """Whether this caller may go on (no attempt in flight, and none just refused), and
        an open attempt to carry on (one left open longer than STALE_ATTEMPT, now claimed by
        this caller). An open attempt whose order has settled is closed and its outcome
        recorded on the rule."""
        found = await self._attempts.find_one(
            {"user_id": rule.user_id, "offer_group": rule.offer_group, "open": True}
        )
        if found is None:
            return True, None
        open_ = Attempt.model_validate(found)
        if open_.order_id is not None:
            order = await self._orders.get_order(order_id=open_.order_id)
            if order.status is not OrderStatus.PENDING:
                await self._settled(rule, open_.id, order, open_.card_id)
                return order.status in _CHARGED, None  # a refusal blocks the rule now
        now = self._clock.now()
        claimed = await self._attempts.find_one_and_update(
            {"_id": open_.id, "open": True, "created_at": {"$lte": now - STALE_ATTEMPT}},
            {"$set": {"created_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return (claimed is not None), None if claimed is None else Attempt.model_validate(claimed)

    async def _insert_attempt(self, rule: Rule, month: str) -> ObjectId | None:
        attempt = ordered_id(self._clock.now())  # the order's id (newest-first lists)
        try:
            await self._attempts.insert_one(
                {
                    "_id": attempt,
                    "user_id": rule.user_id,
                    "offer_group": rule.offer_group,
                    "open": True,
                    "month": month,
                    "charged": False,
                    "created_at": self._clock.now(),
                }
            )
        except DuplicateKeyError:
            return None
        return attempt

    async def _close(self, attempt: ObjectId, *, outcome: AttemptOutcome, charged: bool) -> None:
        await self._attempts.update_one(
            {"_id": attempt, "open": True},
            {"$set": {"open": False, "outcome": outcome.value, "charged": charged}},
        )

    async def _note(
        self,
        rule: Rule,
        *,
        order_id: str | None = None,
        error: str | None = None,
        card: str | None = None,
    ) -> None:
        """Records an attempt's outcome on the rule, unless the rule changed meanwhile;
        `card`: refused with this card ("" for none), which blocks the rule until another
        card is saved or the rule is set again."""
        now = self._clock.now()
        fields: dict[str, Any] = {
            "last_attempt_at": now,
            "last_error": error,
            "blocked_card": card,
            "blocked_at": None if card is None else now,
        }
        if order_id is not None:
            fields["last_order_id"] = order_id
        if error is not None:
            log.info(
                "auto top-up refused",
                extra={"user_id": rule.user_id, "group": rule.offer_group, "error": error},
            )
        # Not again when nothing changed (every debit under a reached cap would write).
        same = {"last_error": error, "blocked_card": card}
        if order_id is not None:
            same["last_order_id"] = order_id
        await self._rules.update_one(
            {"_id": rule.id, "revision": rule.revision, "$nor": [same]},
            {"$set": fields},
        )


_CHARGED = frozenset({OrderStatus.PAID, OrderStatus.INCONSISTENT, OrderStatus.REFUNDED})
"""Order statuses in which the card was charged: what the monthly cap counts."""


def _card_may_differ(rule: Rule, customer: Customer | None) -> bool:
    """Whether a card may have been saved since the rule was blocked (a SetupIntent was
    made since): only then are the provider's cards looked at again."""
    setup_at = None if customer is None else customer.setup_at
    return setup_at is not None and (rule.blocked_at is None or setup_at >= rule.blocked_at)
