"""The offer catalogue: creating, updating and archiving offers, and which offers a caller
may see and buy. No GraphQL, no HTTP.

Visibility:
- Archived offers are never shown or sold.
- An offer with an empty `unlocked_by` is public. One with groups in `unlocked_by` is shown
  only to a user with a paid order in one of those groups: it is "unlocked" for that user.
- Offers sharing an `overriding_key` collapse to one per caller: an unlocked offer beats
  every public one whatever the weights; among offers of the same standing the highest
  weight wins, and a tie goes to the offer created first (the smallest id), so the choice
  never depends on storage order. Offers without a key never collapse.
- The result is ordered by weight (highest first), then by creation (oldest first).
An offer the caller cannot see cannot be bought (OfferNotAvailable); when the reason is that
another offer of the same `overriding_key` replaces it for that caller, the error names the
replacement, so a front end can offer that one instead.

Keys: an offer may carry a `key`, a stable name chosen by the operator (catalogue files and
`upsertOffer` upsert by it). No two offers share a key: a unique index keeps it so, and an
upsert by key that loses a race to create the offer updates the one that won.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from bson import ObjectId
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails
from pymongo.errors import DuplicateKeyError

from usercredits.models import OfferDocument
from usercredits.models.collections import Collection, insert, set_fields
from usercredits.services.catalogue.cycles import expiry
from usercredits.services.clock import Clock
from usercredits.services.errors import (
    Impossible,
    InvalidInput,
    NotFound,
    OfferKeyTaken,
    OfferNotAvailable,
)
from usercredits.services.ids import object_id
from usercredits.services.limits import DEFAULT_INPUT_LIMITS, InputLimits
from usercredits.services.money import Money
from usercredits.values import CombinedItem, Offer, OfferSpec, OrderStatus, Price

KEYED_CREATE_ATTEMPTS = 2
"""Rounds of an upsert by key: a create that loses the race for its key finds the winner in
the next round (offers are archived, never deleted, so that round always finds it)."""


def offer_spec(stated: Mapping[str, object]) -> OfferSpec:
    """The offer an operator stated (in camelCase or by field name); InvalidInput naming
    every broken rule, by the camelCase path of its field."""
    try:
        return OfferSpec.model_validate(stated)
    except ValidationError as exc:
        raise InvalidInput("; ".join(_explain(error) for error in exc.errors())) from None


def _explain(error: ErrorDetails) -> str:
    path = error["loc"]
    where = ".".join(to_camel(part) if isinstance(part, str) else str(part) for part in path)
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def price(amount: str, currency: str) -> Price:
    """A price written as a decimal amount ("19.99") in a currency."""
    money = Money.parse(amount, currency)
    return Price(currency=money.currency, minor_units=money.minor_units)


class KeyedUpsert(StrEnum):
    """What an upsert by key did with the offer (or, in a dry run, would do)."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


class Offers:
    def __init__(
        self,
        *,
        offers: Collection,
        orders: Collection,
        clock: Clock,
        limits: InputLimits = DEFAULT_INPUT_LIMITS,
    ) -> None:
        """`orders`: read for the groups a user has paid in (`paid_groups`)."""
        self._offers = offers
        self._orders = orders
        self._clock = clock
        self._limits = limits

    async def get_offer(self, *, offer_id: str) -> Offer:
        return Offer.model_validate(await self._document(offer_id))

    async def _document(self, offer_id: str) -> OfferDocument:
        raw = await self._offers.find_one({"_id": object_id(offer_id, "offer")})
        if raw is None:
            raise NotFound(f"offer {offer_id} does not exist")
        return OfferDocument.model_validate(raw)

    async def create_offer(self, *, spec: OfferSpec) -> Offer:
        fields = await self._fields(spec, offer_id=None)
        return await self._insert(fields)

    async def _insert(self, fields: dict[str, Any]) -> Offer:
        offer = OfferDocument(**fields, created_at=self._clock.now())
        await insert(self._offers, offer)
        return Offer.model_validate(offer)

    async def update_offer(
        self, *, offer_id: str, spec: OfferSpec, key: str | None = None
    ) -> Offer:
        """Restates the offer `offer_id`; with `key`, the offer takes that key too (its key
        is kept otherwise). OfferKeyTaken if another offer has the key."""
        offer = await self._document(offer_id)
        fields = await self._fields(spec, offer_id=offer_id)
        if key is not None:
            fields["key"] = self._limits.key(key, "key")
        try:
            raw = await set_fields(self._offers, offer.id, fields)
        except DuplicateKeyError:
            holder = await self.by_key(fields["key"])
            named = "another offer" if holder is None else f"offer {holder.id}"
            raise OfferKeyTaken(f"key {fields['key']!r} already names {named}") from None
        if raw is None:
            raise NotFound(f"offer {offer_id} does not exist")
        return Offer.model_validate(raw)

    async def upsert_offer(
        self, *, spec: OfferSpec, offer_id: str | None = None, key: str | None = None
    ) -> Offer:
        """What `upsertOffer` does: with an id, updates that offer (and gives it `key`);
        without one, updates the offer that has `key`, or creates it (with that key, if
        given)."""
        if offer_id is not None:
            return await self.update_offer(offer_id=offer_id, spec=spec, key=key)
        if key is None:
            return await self.create_offer(spec=spec)
        _, offer = await self.upsert_by_key(key=key, spec=spec)
        if offer is None:
            raise Impossible(f"the upsert of offer key {key!r} made no offer")
        return offer

    async def upsert_by_key(
        self,
        *,
        key: str,
        spec: OfferSpec,
        dry_run: bool = False,
        planned_groups: Mapping[str, str] | None = None,
    ) -> tuple[KeyedUpsert, Offer | None]:
        """Creates or updates the offer that carries `key`; returns what was (or, with
        `dry_run`, would be) done, and the offer (None for a dry run's create).

        `planned_groups` maps stand-in ids of offers a dry run would create to their groups,
        so bundles of those offers can be checked before they exist."""
        key = self._limits.key(key, "key")
        for _ in range(KEYED_CREATE_ATTEMPTS):
            existing = await self._keyed(key)
            fields = await self._fields(
                spec,
                offer_id=None if existing is None else str(existing.id),
                planned_groups=planned_groups or {},
            )
            fields["key"] = key
            if existing is None:
                if dry_run:
                    return KeyedUpsert.CREATE, None
                try:
                    return KeyedUpsert.CREATE, await self._insert(fields)
                except DuplicateKeyError:
                    # A concurrent upsert of the same key created it first: update that one.
                    continue
            if all(getattr(existing, name) == value for name, value in fields.items()):
                return KeyedUpsert.UNCHANGED, Offer.model_validate(existing)
            if dry_run:
                return KeyedUpsert.UPDATE, Offer.model_validate(existing)
            raw = await set_fields(self._offers, existing.id, fields)
            if raw is None:  # deleted meanwhile: the key is free again
                continue
            return KeyedUpsert.UPDATE, Offer.model_validate(raw)
        raise Impossible(f"offer key {key!r} is taken, yet no offer has it")

    async def _keyed(self, key: str) -> OfferDocument | None:
        """The offer that carries `key`; an exported offer that had no key was exported
        under its id, and its id as a key names it."""
        raw = await self._offers.find_one({"key": key})
        if raw is None and ObjectId.is_valid(key):
            raw = await self._offers.find_one({"_id": ObjectId(key), "key": None})
        return None if raw is None else OfferDocument.model_validate(raw)

    async def archive_offer(self, *, offer_id: str) -> Offer:
        """Stops selling an offer; its orders and the tokens they granted are untouched."""
        offer = await self._document(offer_id)
        if offer.archived:
            return Offer.model_validate(offer)
        raw = await set_fields(self._offers, offer.id, {"archived": True})
        if raw is None:
            raise NotFound(f"offer {offer_id} does not exist")
        return Offer.model_validate(raw)

    async def _fields(
        self,
        spec: OfferSpec,
        *,
        offer_id: str | None,
        planned_groups: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The stored fields of a spec, once the rules it cannot check alone hold: the
        group within the limits, one cycle of the offer and of each bundled item ending
        by cycles.LATEST, bundled offers that exist (and their groups)."""
        self._limits.group(spec.offer_group)
        now = self._clock.now()
        expiry(now, spec.cycle, 1, spec.custom_cycle_seconds)
        for bundled in spec.combined_items:
            if bundled.cycle is not None:
                expiry(now, bundled.cycle, 1, bundled.custom_cycle_seconds)
        items = [
            await self._item(item, offer_id, planned_groups or {}) for item in spec.combined_items
        ]
        return {**dict(spec), "combined_items": items}

    async def _item(
        self, item: CombinedItem, bundle_id: str | None, planned_groups: Mapping[str, str]
    ) -> CombinedItem:
        if item.offer_id == bundle_id:
            raise InvalidInput(f"offer {bundle_id} cannot bundle itself")
        group = planned_groups.get(item.offer_id)
        if group is None:
            try:
                group = (await self.get_offer(offer_id=item.offer_id)).offer_group
            except NotFound:
                raise InvalidInput(
                    f"combined item points at unknown offer {item.offer_id}"
                ) from None
        return item.model_copy(update={"offer_group": group})

    async def by_key(self, key: str) -> Offer | None:
        """The offer that carries the catalogue key `key`, if any."""
        raw = await self._offers.find_one({"key": key})
        return None if raw is None else Offer.model_validate(raw)

    async def on_sale(self) -> list[Offer]:
        """Every offer not archived, oldest first: what a catalogue export writes."""
        found = self._offers.find({"archived": False}).sort("_id", 1)
        return [Offer.model_validate(raw) async for raw in found]

    async def any_offer(self) -> bool:
        """Whether the catalogue has any offer at all, archived ones included."""
        return await self._offers.find_one({}, {"_id": 1}) is not None

    async def paid_groups(self, *, user_id: str) -> set[str]:
        """Groups in which the user has a paid order: the keys that unlock offers."""
        groups = await self._orders.distinct(
            "offer_group", {"user_id": user_id, "status": OrderStatus.PAID.value}
        )
        return set(groups)

    async def load_offers(
        self,
        *,
        user_id: str | None,
        tags: list[str] | None = None,
        offer_group: str | None = None,
    ) -> list[Offer]:
        """The offers `user_id` (None: anonymous) can buy now, with overriding applied."""
        unlocked = await self.paid_groups(user_id=user_id) if user_id else set()
        return choose_visible(await self._on_sale(offer_group, tags), unlocked)

    async def _on_sale(self, offer_group: str | None, tags: list[str] | None = None) -> list[Offer]:
        """The offers not archived, in `offer_group` and with every tag of `tags` if given."""
        # Locked offers are dropped by choose_visible, not by the query: a top-level `$or`
        # on unlocked_by keeps some servers (SecantusDB) from using the index at all.
        query: dict[str, Any] = {"archived": False}
        if offer_group is not None:
            query["offer_group"] = offer_group
        if tags:
            query["tags"] = {"$all": list(tags)}
        found = self._offers.find(query)
        return [Offer.model_validate(raw) async for raw in found]

    async def visible_offer(self, *, user_id: str | None, offer_id: str) -> Offer | None:
        """The offer if the caller (None: anonymous) can see it now, else None."""
        try:
            offer = await self.get_offer(offer_id=offer_id)
        except NotFound:
            return None
        visible = await self.load_offers(user_id=user_id, offer_group=offer.offer_group)
        return offer if any(o.id == offer.id for o in visible) else None

    async def ensure_available(self, *, user_id: str, offer_id: str) -> Offer:
        """The offer if `user_id` can see it now; else OfferNotAvailable (or NotFound),
        naming the offer that replaces it when an offer of the same overriding key does."""
        offer = await self.get_offer(offer_id=offer_id)
        unlocked = await self.paid_groups(user_id=user_id)
        visible = choose_visible(await self._on_sale(offer.offer_group), unlocked)
        if any(o.id == offer.id for o in visible):
            return offer
        refused = f"offer {offer_id} is not available to user {user_id}"
        # Shown on its own (on sale, unlocked or public) yet not shown: an offer of the
        # same overriding key won the choice.
        if not offer.archived and choose_visible([offer], unlocked):
            winner = next(o for o in visible if o.overriding_key == offer.overriding_key)
            raise OfferNotAvailable(
                f"{refused}: offer {winner.id} ({winner.name!r}) replaces it for this user "
                f"(same overridingKey {offer.overriding_key!r})",
                replaced_by=winner.id,
            )
        raise OfferNotAvailable(refused)


def choose_visible(candidates: list[Offer], unlocked: set[str]) -> list[Offer]:
    """Applies unlocking and overriding to visible candidates (pure; see the module doc)."""

    def rank(offer: Offer) -> tuple[bool, int, str]:
        is_unlocked = bool(set(offer.unlocked_by) & unlocked)
        # The smallest id (earliest created) wins a tie: `_invert` turns it into the largest.
        return (is_unlocked, offer.weight, _invert(str(offer.id)))

    winners: dict[str, Offer] = {}
    chosen: list[Offer] = []
    for offer in candidates:
        if offer.unlocked_by and not set(offer.unlocked_by) & unlocked:
            continue
        if offer.overriding_key is None:
            chosen.append(offer)
            continue
        best = winners.get(offer.overriding_key)
        if best is None or rank(offer) > rank(best):
            winners[offer.overriding_key] = offer
    chosen.extend(winners.values())
    return sorted(chosen, key=lambda o: (-o.weight, str(o.id)))


def _invert(hex_id: str) -> str:
    """Maps a hex id to one that sorts in the opposite order, so max() picks the smallest id."""
    return hex_id.translate(str.maketrans("0123456789abcdef", "fedcba9876543210"))
