"""The one write path of token balances: every movement (debit, hold, settle, credit,
expiry, refund) goes through `Movements.move`, which owns the guard, `seq`, `balance_after`
and the ledger entries. TigerBeetle's `create_transfers` is the model. No GraphQL, no HTTP.

A movement is one conditional single-document write of the balance, addressed by `_id`:

1. read the balance (by `_id`);
2. make sure the entries of its last movement are in the ledger (they usually are: see
   below), so that the write in step 5 may drop them;
3. with an idempotency key: if the last movement or the ledger already has that key, the
   movement happened; its entries are the answer and nothing is written;
4. the plan (a pure function of the balance and the time) decides the new lots and holds
   and the entries' facts, or refuses with a DomainError;
5. write the balance only if its `seq` is still the one read (compare-and-set): new lots,
   holds, totals, `seq`, and the new entries as `last`. Losing the race re-runs from 1;
6. insert the entries into the ledger; a duplicate (a retry, or step 2 of a racing
   movement) is already there.

WHY IT IS ENOUGH. The balance document holds the lots, so no movement can overdraw: the
plan sees every token and the compare-and-set publishes nothing but a plan made on the
current state. A process that dies after step 5 leaves its entries in `last`, and the
next movement of that balance (or the sweep, or the retry with the same key) puts them in
the ledger in step 2, before anything can replace them. A key is checked against `last`
after the balance is read and against the ledger after that: an entry leaves `last` only
once it is in the ledger, so a key used by a committed movement is seen in one of the two,
and one used by a racing movement makes the compare-and-set fail and the re-run see it.
No multi-document transaction is held, so a crash leaves no locks behind.
"""

import asyncio
import logging
import random
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from models import Balance, Hold, LedgerEntry, LedgerReason, Lot, LotDraw, balance_id
from services.clock import Clock
from services.errors import DomainError
from services.lots import next_expiry, prune

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
FLUSHED_CACHE = 100_000
"""Balances whose last entries this process knows to be in the ledger (a bounded LRU)."""


class Contended(DomainError):
    """Other movements kept winning the race for this balance within the time budget."""

    code = "CONFLICT"


@dataclass(frozen=True, slots=True)
class Entry:
    """What a plan says of one ledger entry; the primitive adds seq and balance_after."""

    tokens: int
    reason: LedgerReason
    lots: list[LotDraw] = field(default_factory=list)
    note: str | None = None
    order_id: str | None = None
    reservation_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A plan's outcome: the balance's lots and holds after the movement, and its entries."""

    lots: list[Lot]
    holds: list[Hold]
    entries: list[Entry]


Plan = Callable[[Balance | None, datetime], Change | None]
"""Decides a movement from the current balance (None: never credited) and the time;
returns None when there is nothing to do, raises a DomainError to refuse."""

FaultHook = Callable[[str], None]
"""Called between the steps of a movement with the step's name; tests raise there."""


class Movements:
    def __init__(
        self, *, clock: Clock, budget_seconds: float = 15.0, faults: FaultHook | None = None
    ) -> None:
        self._clock = clock
        self._budget = budget_seconds
        self._faults = faults or (lambda step: None)
        self._balances = Balance.get_pymongo_collection()
        self._ledger = LedgerEntry.get_pymongo_collection()
        self._flushed: OrderedDict[str, int] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def move(
        self, *, user_id: str, offer_group: str, plan: Plan, key: str | None = None
    ) -> list[LedgerEntry]:
        """Applies `plan` to the balance once; with `key`, a repeat returns the entries
        that key made (in whichever group), however late it comes. [] when the plan had
        nothing to do."""
        bid = balance_id(user_id, offer_group)
        # Movements of one balance queue in this process instead of racing: a lost
        # compare-and-set costs a re-read, and 200 concurrent debits of one balance would
        # otherwise make O(200^2) attempts. Other processes still race, and the
        # compare-and-set keeps that safe.
        lock = self._locks.setdefault(bid, asyncio.Lock())
        async with lock:
            return await self._move(bid, user_id, offer_group, plan, key)

    async def _move(
        self, bid: str, user_id: str, offer_group: str, plan: Plan, key: str | None
    ) -> list[LedgerEntry]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._budget
        attempt = 0
        while True:
            raw = await self._balances.find_one({"_id": bid})
            self._faults("read")
            await self.flush(raw)
            self._faults("flushed")
            if key is not None:
                replayed = await self._by_key(raw, user_id, key)
                if replayed:
                    return replayed
            current = None if raw is None else Balance.model_validate(raw)
            now = self._clock.now()
            change = plan(current, now)
            if change is None:
                return []
            entries = _entries(current, change, user_id, offer_group, now)
            self._faults("planned")
            if await self._write(bid, current, change, entries, user_id, offer_group, now):
                self._faults("written")
                await self._insert(bid, entries)
                self._faults("inserted")
                return [LedgerEntry.model_validate(e) for e in entries]
            attempt += 1
            if loop.time() >= deadline:
                raise Contended(f"balance {offer_group!r} of user {user_id} is too busy; retry")
            await asyncio.sleep(random.random() * min(0.002 * 1.5**attempt, 0.05))

    async def flush(self, raw: dict[str, Any] | None) -> None:
        """Puts a balance's last entries into the ledger, unless this process already did."""
        if raw is None or not raw.get("last"):
            return
        last_seq = raw["last"][-1]["seq"]
        if self._flushed.get(raw["_id"], 0) >= last_seq:
            return
        await self._insert(raw["_id"], raw["last"])

    async def flush_idle(self, *, older_than: datetime) -> int:
        """Puts into the ledger the last entries of balances that have not moved since
        `older_than` and may not have got there (their movement was cut short after its
        write), and notes that they did. A balance that moves again is flushed by that
        movement; this is for the ones that do not (the sweep calls it)."""
        flushed = 0
        cursor = self._balances.find(
            {"unflushed": True, "updated_at": {"$lte": older_than}}, {"last": 1, "seq": 1}
        )
        async for raw in cursor:
            await self.flush(raw)
            await self._balances.update_one(
                {"_id": raw["_id"], "seq": raw["seq"]}, {"$set": {"unflushed": False}}
            )
            flushed += 1
        return flushed

    async def _insert(self, bid: str, entries: list[dict[str, Any]]) -> None:
        try:
            await self._ledger.insert_many(entries, ordered=False)
        except BulkWriteError as exc:
            if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                raise
        self._flushed[bid] = entries[-1]["seq"]
        self._flushed.move_to_end(bid)
        if len(self._flushed) > FLUSHED_CACHE:
            self._flushed.popitem(last=False)

    async def _by_key(
        self, raw: dict[str, Any] | None, user_id: str, key: str
    ) -> list[LedgerEntry]:
        if raw is not None:
            for entry in raw.get("last", []):
                if entry.get("idempotency_key") == key:
                    return [LedgerEntry.model_validate(entry)]
        found = await self._ledger.find_one({"user_id": user_id, "idempotency_key": key})
        return [] if found is None else [LedgerEntry.model_validate(found)]

    async def _write(
        self,
        bid: str,
        current: Balance | None,
        change: Change,
        entries: list[dict[str, Any]],
        user_id: str,
        offer_group: str,
        now: datetime,
    ) -> bool:
        lots = prune(change.lots)
        fields = {
            "tokens": sum(lot.remaining for lot in lots),
            "reserved": sum(lot.held for lot in lots),
            "seq": entries[-1]["seq"] if entries else (current.seq if current else 0),
            "lots": [lot.model_dump() for lot in lots],
            "holds": [hold.model_dump() for hold in change.holds],
            "next_expiry": next_expiry(lots),
            "last": entries,
            "unflushed": True,
            "updated_at": now,
        }
        if current is None:
            try:
                await self._balances.insert_one(
                    {"_id": bid, "user_id": user_id, "offer_group": offer_group, "starts": now}
                    | fields
                )
            except DuplicateKeyError:
                return False
            return True
        result = await self._balances.update_one({"_id": bid, "seq": current.seq}, {"$set": fields})
        return result.modified_count == 1


def _entries(
    current: Balance | None, change: Change, user_id: str, offer_group: str, now: datetime
) -> list[dict[str, Any]]:
    """The plan's entries as ledger documents, numbered from the balance's `seq` and each
    carrying the running balance after it."""
    seq = current.seq if current else 0
    running = current.tokens if current else 0
    documents = []
    for entry in change.entries:
        seq += 1
        running += entry.tokens
        documents.append(
            {
                "_id": ObjectId(),
                "user_id": user_id,
                "offer_group": offer_group,
                "tokens": entry.tokens,
                "balance_after": running,
                "seq": seq,
                "reason": entry.reason.value,
                "note": entry.note,
                "order_id": entry.order_id,
                "reservation_id": entry.reservation_id,
                "idempotency_key": entry.idempotency_key,
                "lots": [d.model_dump() for d in entry.lots],
                "created_at": now,
            }
        )
    if running != sum(lot.remaining for lot in change.lots):
        raise RuntimeError(
            f"a plan for {offer_group!r} of user {user_id} moved lots by other amounts than "
            f"its entries: the ledger would no longer add up to the balance"
        )
    return documents
