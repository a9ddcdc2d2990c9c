"""`usercredits migrate`: a database written by an earlier version, brought to this one.

- A balance written before lots existed had one period for its whole group (tokens,
  reserved, starts, expires) and its held reservations lived only in the reservations
  collection. Each becomes one lot with the group's period, holding the group's reserved
  tokens for those reservations, under the balance `_id` that movements address.
- A keyed ledger entry written before `user_key` existed gets it, so that a retry of its
  key is still recognised; then the old (user, key) index goes.
- A balance written before `due_at` existed gets it, so that the sweep finds its expiries,
  its holds' and its unflushed entries (until then, its next movement or read still writes
  a lapse that is due).

Running it again changes nothing; a dry run says what it would do and writes nothing. It
works on the whole database, so it is handed all its collections.
"""

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError, OperationFailure

from usercredits.models import balance_id, due_at, pack_lots, user_key
from usercredits.models.collections import Collection, Collections
from usercredits.services.wallets.lots import totals
from usercredits.values import (
    Hold,
    Lot,
    LotDraw,
    LotSource,
    ReservationStatus,
)

log = logging.getLogger(__name__)

LEGACY_INDEX = "user_group_unique"
"""The old unique (user, group) index: the new `_id` says the same, and the index would
refuse the new document while the old one is still there."""

LEGACY_LEDGER_INDEX = "user_idempotency_unique"
"""The old unique (user, key) index of the ledger, partial: `user_key`'s index replaces it."""

WRITE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Migrated:
    user_id: str
    offer_group: str
    tokens: int
    reserved: int
    expires: datetime | None

    def __str__(self) -> str:
        until = self.expires.isoformat() if self.expires else "never"
        return (
            f"{self.user_id} / {self.offer_group}: one lot of {self.tokens + self.reserved} "
            f"tokens ({self.reserved} held) until {until}"
        )


async def migrate_balances(*, collections: Collections, dry_run: bool = False) -> list[Migrated]:
    """Turns every balance without lots into one with a single lot; returns what it did."""
    balances = collections.balances
    if not dry_run:
        with contextlib.suppress(OperationFailure):  # already gone, or never made
            await balances.drop_index(LEGACY_INDEX)
    done = []
    async for old in balances.find({"lots": {"$exists": False}}):
        if old.get("starts") is None:  # opened, never credited: nothing to keep
            if not dry_run:
                await balances.delete_one({"_id": old["_id"]})
            continue
        new = await _with_lot(old, collections.reservations)
        done.append(
            Migrated(
                user_id=old["user_id"],
                offer_group=old["offer_group"],
                tokens=old["tokens"],
                reserved=old["reserved"],
                expires=old.get("expires"),
            )
        )
        if dry_run:
            continue
        # An earlier run may have inserted it and stopped before the delete.
        with contextlib.suppress(DuplicateKeyError):
            await balances.insert_one(new)
        await balances.delete_one({"_id": old["_id"]})
        log.info("balance migrated", extra={"balance": new["_id"]})
    return done


async def _with_lot(old: dict[str, Any], reservations: Collection) -> dict[str, Any]:
    lot = Lot(
        id=str(ObjectId()),
        source=LotSource.GRANT,
        tokens=old["tokens"] + old["reserved"],
        remaining=old["tokens"],
        held=old["reserved"],
        starts=old["starts"],
        expires=old.get("expires"),
        note="the group's tokens before lots",
        created_at=old["starts"],
    )
    held = reservations.find(
        {
            "user_id": old["user_id"],
            "offer_group": old["offer_group"],
            "status": ReservationStatus.HELD.value,
        }
    )
    holds = [
        Hold(
            id=str(r["_id"]),
            tokens=r["tokens"],
            draws=[LotDraw(lot_id=lot.id, tokens=r["tokens"])],
            expires_at=r["expires_at"],
            idempotency_key=r["idempotency_key"],
        )
        async for r in held
    ]
    return {
        "_id": balance_id(old["user_id"], old["offer_group"]),
        "user_id": old["user_id"],
        "offer_group": old["offer_group"],
        "tokens": old["tokens"],
        "reserved": old["reserved"],
        "seq": old["seq"],
        "lots": pack_lots([lot]),
        "holds": [hold.model_dump() for hold in holds],
        "starts": old["starts"],
        "next_expiry": totals([lot]).next_expiry,
        "last": [],
        "unflushed": False,
        "updated_at": old["updated_at"],
        "due_at": due_at(totals([lot]).next_expiry, *(hold.expires_at for hold in holds)),
    }


async def key_ledger_entries(*, collections: Collections, dry_run: bool = False) -> int:
    """Gives every keyed ledger entry without `user_key` its `user_key`, in one pass, then
    drops the index it replaces; returns how many entries it keyed (or would)."""
    ledger = collections.ledger
    unkeyed = {"idempotency_key": {"$type": "string"}, "user_key": {"$exists": False}}
    if dry_run:
        return await ledger.count_documents(unkeyed)
    updates = (
        UpdateOne(
            {"_id": doc["_id"]},
            {"$set": {"user_key": user_key(doc["user_id"], doc["idempotency_key"])}},
        )
        async for doc in ledger.find(unkeyed, {"user_id": 1, "idempotency_key": 1})
    )
    keyed = await _in_batches(ledger, updates)
    with contextlib.suppress(OperationFailure):  # already gone, or never made
        await ledger.drop_index(LEGACY_LEDGER_INDEX)
    return keyed


async def date_balances(*, collections: Collections, dry_run: bool = False) -> int:
    """Gives every balance without `due_at` its `due_at`; returns how many it dated (or
    would). A balance that moves meanwhile is dated by its movement and left alone."""
    balances = collections.balances
    undated: dict[str, Any] = {"due_at": {"$exists": False}}
    if dry_run:
        return await balances.count_documents(undated)
    fields = {"next_expiry": 1, "holds.expires_at": 1, "unflushed": 1, "updated_at": 1}
    updates = (
        UpdateOne({"_id": doc["_id"]} | undated, {"$set": {"due_at": _due(doc)}})
        async for doc in balances.find(undated, fields)
    )
    return await _in_batches(balances, updates)


def _due(raw: dict[str, Any]) -> datetime | None:
    holds = (hold["expires_at"] for hold in raw.get("holds", []))
    unflushed = raw["updated_at"] if raw.get("unflushed") else None
    return due_at(raw.get("next_expiry"), unflushed, *holds)


async def _in_batches(collection: Collection, updates: AsyncIterator[UpdateOne]) -> int:
    """Writes `updates` WRITE_BATCH at a time; how many documents they changed."""
    changed = 0
    batch: list[UpdateOne] = []
    async for update in updates:
        batch.append(update)
        if len(batch) == WRITE_BATCH:
            changed += (await collection.bulk_write(batch, ordered=False)).modified_count
            batch = []
    if batch:
        changed += (await collection.bulk_write(batch, ordered=False)).modified_count
    return changed
