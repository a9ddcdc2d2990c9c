"""The one write path of token balances: every movement (debit, hold, settle, credit,
expiry, refund) goes through `Movements.move`, which owns the guard, `seq`, `balance_after`
and the ledger entries. TigerBeetle's `create_transfers` is the model. No GraphQL, no HTTP.

A movement is one conditional single-document write of the balance, addressed by `_id`:

1. read the balance (by `_id`);
2. make sure the entries of its last movement are in the ledger (they usually are: see
   below), so that the write in step 5 may drop them;
3. with an idempotency key: if the last movement or the ledger already has that key, the
   movement happened; its entries are the answer and nothing is written;
4. lots that lapsed since the balance last moved lose their tokens first, with an expiry
   entry (see `_lapse_first`): the decision, and the ledger, never see tokens that are no longer
   there, whether the sweep has come by or not;
   the decision (a pure function of the balance and the time) decides the new lots and holds
   and the entries' facts, or refuses with a DomainError (then nothing is written, the
   lapse included);
5. write the balance only if its `seq` is still the one read (compare-and-set): new lots,
   holds, totals, `seq`, and the new entries as `last`. Losing the race re-runs from 1;
6. insert the entries into the ledger; a duplicate (a retry, or step 2 of a racing
   movement) is already there.

WHY IT IS ENOUGH. The balance document holds the lots, so no movement can overdraw: the
decision sees every token and the compare-and-set publishes nothing but a decision made on the
current state. A process that dies after step 5 leaves its entries in `last`, and the
next movement of that balance (or the sweep, or the retry with the same key) puts them in
the ledger in step 2, before anything can replace them. A key is checked against `last`
after the balance is read and against the ledger after that: an entry leaves `last` only
once it is in the ledger, so a key used by a committed movement is seen in one of the two,
and one used by a racing movement makes the compare-and-set fail and the re-run see it.
No multi-document transaction is held, so a crash leaves no locks behind.

GROUP COMMIT. The database charges mostly per command, not per document, so this process
runs the steps above for many movements at once: movements queue, and one worker takes
every queued movement of a distinct balance (up to `max_batch`) and runs each step for all
of them in one command (a find by `_id $in`, one key lookup, one bulk write, one
insert_many). A movement of a balance already in the batch waits for the next one, so
movements of one balance never race each other in this process; other processes still
race, and the compare-and-set keeps that safe. A lone movement is a batch of one.
"""

import asyncio
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from usercredits.models import Balance, balance_id, due_at, lot_text, pack_lots, user_key
from usercredits.models.collections import Collection
from usercredits.services.clock import Clock, due_by
from usercredits.services.errors import Contended, Impossible
from usercredits.services.ids import ordered_id
from usercredits.services.sharding import ONE_SERVER, UserScope
from usercredits.services.wallets.lots import Totals, lapse, prune, totals
from usercredits.services.writes import duplicates_only
from usercredits.values import Hold, LedgerEntry, LedgerReason, Lot, LotDraw

log = logging.getLogger(__name__)

FLUSHED_CACHE = 100_000
"""Balances whose last entries this process knows to be in the ledger (a bounded LRU)."""
DECODED_LOTS = 50_000
"""Lots kept decoded across movements (see `_DecodedLots`)."""


@dataclass(frozen=True, slots=True)
class Posting:
    """What a decision says of one ledger entry; the primitive adds seq and balance_after."""

    tokens: int
    reason: LedgerReason
    lots: list[LotDraw] = field(default_factory=list)
    note: str | None = None
    order_id: str | None = None
    reservation_id: str | None = None
    idempotency_key: str | None = None
    released: int = 0
    """Held tokens this entry gives back to the spendable balance before its own `tokens`
    count (a commit releases its hold and spends part of it in the same entry)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision's outcome: the balance's lots and holds after the movement, and its entries."""

    lots: list[Lot]
    holds: list[Hold]
    entries: list[Posting]


@dataclass(frozen=True, slots=True)
class Last:
    """A balance's last movement as the balance stores it (`Balance.last`): its entries,
    which the ledger may not have yet (step 2 puts them there)."""

    bid: str
    entries: list[dict[str, Any]]
    """As the ledger stores them: inserted there as they are."""

    @property
    def seq(self) -> int:
        """The last entry's `seq` (0 for none)."""
        return int(self.entries[-1]["seq"]) if self.entries else 0

    @classmethod
    def of(cls, raw: dict[str, Any]) -> "Last":
        """The last movement of a balance document (read whole, or with `last`)."""
        return cls(bid=raw["_id"], entries=raw.get("last") or [])


@dataclass(frozen=True, slots=True)
class _Entries:
    """A movement's new entries, as the ledger (and the balance's `last`) stores them, and
    what the primitive checks and writes from them."""

    documents: list[dict[str, Any]]
    seq: int
    """The last entry's: the balance's `seq` after the movement."""
    balance_after: int
    """The last entry's: what the lots must add up to after the movement."""
    created_at: datetime
    last_id: ObjectId
    """The last entry's id, a fresh one at every write (see `_DecodedLots`)."""


Decision = Callable[[Balance | None, datetime], Outcome | None]
"""Decides a movement from the current balance (None: never credited) and the time;
returns None when there is nothing to do, raises a DomainError to refuse. The balance it
is given has already lost the tokens of its lapsed lots (step 4)."""


def catch_up(balance: Balance | None, now: datetime) -> Outcome | None:
    """The decision of a movement with no entries of its own: it writes only the expiry of the
    lots that lapsed (the sweep, and reads that must see the ledger whole, use it)."""
    if balance is None:
        return None
    return Outcome(lots=balance.lots, holds=balance.holds, entries=[])


FaultHook = Callable[[str], None]
"""Called between the steps of a movement with the step's name; tests raise there."""


@dataclass
class _Request:
    """One queued movement and the future its caller awaits."""

    bid: str
    user_id: str
    offer_group: str
    decide: Decision
    key: str | None
    future: asyncio.Future[list[LedgerEntry]]
    deadline: float


@dataclass
class _Planned:
    request: _Request
    current: Balance | None
    entries: _Entries
    lots: list[Lot]
    """The balance's lots after the movement, as step 5 stores them."""
    texts: "_Texts"
    update: dict[str, Any]
    """Step 5's update of the balance (its `$set` is also a new balance's fields)."""


class Movements:
    def __init__(
        self,
        *,
        balances: Collection,
        ledger: Collection,
        clock: Clock,
        budget_seconds: float = 15.0,
        max_batch: int = 64,
        faults: FaultHook | None = None,
        scope: UserScope = ONE_SERVER,
    ) -> None:
        self._clock = clock
        self._scope = scope
        self._budget = budget_seconds
        self._max_batch = max_batch
        self._faults = faults or (lambda step: None)
        self._balances = balances
        self._ledger = ledger
        self._flushed: OrderedDict[str, int] = OrderedDict()
        self._decoded = _DecodedLots()
        self._queue: deque[_Request] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def move(
        self,
        *,
        user_id: str,
        offer_group: str,
        decide: Decision,
        key: str | None = None,
    ) -> list[LedgerEntry]:
        """Applies `decide` to the balance once; with `key`, a repeat returns the entries
        that key made (in whichever group), however late it comes. [] when the decision had
        nothing to do."""
        loop = asyncio.get_running_loop()
        request = _Request(
            bid=balance_id(user_id, offer_group),
            user_id=user_id,
            offer_group=offer_group,
            decide=decide,
            key=key,
            future=loop.create_future(),
            deadline=loop.time() + self._budget,
        )
        self._queue.append(request)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="movements")
        return await request.future

    async def _work(self) -> None:
        """Runs batches while movements are queued; ends when the queue is empty."""
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = self._take()
            try:
                lost = await self._run(batch)
            except Exception as exc:  # the batch's callers see it; each may retry
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            for request in lost:
                if loop.time() >= request.deadline:
                    request.future.set_exception(
                        Contended(
                            f"balance {request.offer_group!r} of user {request.user_id} is "
                            f"too busy; retry"
                        )
                    )
                else:
                    self._queue.append(request)
            if lost:  # another process is moving the same balances: let it finish
                await asyncio.sleep(random.random() * 0.01)

    def _take(self) -> list[_Request]:
        """The next batch: queued movements of distinct balances, in queue order."""
        batch: dict[str, _Request] = {}
        kept: deque[_Request] = deque()
        while self._queue:
            request = self._queue.popleft()
            if request.future.done():  # its caller gave up
                continue
            if request.bid in batch or len(batch) >= self._max_batch:
                kept.append(request)
            else:
                batch[request.bid] = request
        self._queue = kept
        return list(batch.values())

    async def _run(self, batch: list[_Request]) -> list[_Request]:
        """Steps 1 to 6 for a batch; returns the movements that lost their race."""
        cursor = self._balances.find(
            self._scope.scoped({"_id": {"$in": [r.bid for r in batch]}}, (r.user_id for r in batch))
        )
        raws = {doc["_id"]: doc async for doc in cursor}
        lasts = {bid: Last.of(raw) for bid, raw in raws.items()}
        self._faults("read")
        await self._flush_all(list(lasts.values()))
        self._faults("flushed")
        replays = await self._by_keys(lasts, [r for r in batch if r.key is not None])
        now = self._clock.now()
        planned = []
        for request in batch:
            if request.key is not None and (request.user_id, request.key) in replays:
                request.future.set_result(replays[request.user_id, request.key])
                continue
            raw = raws.get(request.bid)
            current = None if raw is None else self._decoded.balance(raw)
            try:
                seen, lapsed = _lapse_first(current, now)
                outcome = request.decide(seen, now)
                if outcome is None or not (lapsed or outcome.entries):
                    request.future.set_result([])
                    continue
                lots = prune(outcome.lots)
                sums = totals(lots)
                facts = [*lapsed, *outcome.entries]
                entries = _entries(current, facts, request.user_id, request.offer_group, now)
                _check(entries, sums, request)
            except Exception as exc:  # a refusal (DomainError), or a bug in one decision
                request.future.set_exception(exc)
                continue
            text, texts = self._decoded.pack(request.bid, lots)
            update = _update(outcome, text, sums, entries, now, _lapsed_at(seen, outcome))
            planned.append(_Planned(request, current, entries, lots, texts, update))
        self._faults("planned")
        won, lost = await self._write_all(planned)
        self._faults("written")
        await self._publish([Last(p.request.bid, p.entries.documents) for p in won])
        self._faults("inserted")
        for p in won:
            self._decoded.put(p.request.bid, p.entries.last_id, p.lots, p.texts)
            documents = p.entries.documents
            p.request.future.set_result([LedgerEntry.model_validate(e) for e in documents])
        return [p.request for p in lost]

    async def _write_all(self, planned: list[_Planned]) -> tuple[list[_Planned], list[_Planned]]:
        """Step 5 for every planned movement in one bulk write: an insert for a balance
        never written, a compare-and-set on `seq` for the others."""
        if not planned:
            return [], []
        operations: list[InsertOne[Any] | UpdateOne] = []
        for p in planned:
            if p.current is None:
                r = p.request
                operations.append(
                    InsertOne(
                        {"_id": r.bid, "user_id": r.user_id, "offer_group": r.offer_group}
                        | {"starts": p.entries.created_at}
                        | p.update["$set"]
                    )
                )
            else:
                cas = {"_id": p.request.bid, "seq": p.current.seq}
                operations.append(UpdateOne(self._scope.scoped(cas, [p.request.user_id]), p.update))
        updates = sum(isinstance(op, UpdateOne) for op in operations)
        try:
            result = await self._balances.bulk_write(operations, ordered=False)
            modified, failed = result.modified_count, set[int]()
        except BulkWriteError as exc:
            errors = duplicates_only(exc)
            modified, failed = exc.details["nModified"], {e["index"] for e in errors}
        won = [p for i, p in enumerate(planned) if i not in failed]
        if modified == updates:
            return won, [p for i, p in enumerate(planned) if i in failed]
        # Some compare-and-sets missed; the bulk result does not say which, the documents do.
        ours = {p.request.bid: p for p in won if p.current is not None}
        cursor = self._balances.find(
            self._scope.scoped(
                {"_id": {"$in": list(ours)}}, (p.request.user_id for p in ours.values())
            ),
            {"last._id": 1},
        )
        written = set()
        async for doc in cursor:
            entry_ids = [e["_id"] for e in ours[doc["_id"]].entries.documents]
            if [e["_id"] for e in doc.get("last", [])] == entry_ids:
                written.add(doc["_id"])
        missed = [p for p in ours.values() if p.request.bid not in written]
        return (
            [p for p in won if p.current is None or p.request.bid in written],
            [p for i, p in enumerate(planned) if i in failed] + missed,
        )

    async def flush(self, last: Last | None) -> None:
        """Puts a balance's last entries into the ledger, unless this process already did."""
        await self._flush_all([] if last is None else [last])

    async def _flush_all(self, lasts: list[Last]) -> None:
        await self._publish(
            [last for last in lasts if last.entries and self._flushed.get(last.bid, 0) < last.seq]
        )

    async def flush_idle(self, *, older_than: datetime) -> int:
        """Puts into the ledger the last entries of balances that have not moved since
        `older_than` and may not have got there (their movement was cut short after its
        write), and notes that they did. A balance that moves again is flushed by that
        movement; this is for the ones that do not (the sweep calls it)."""
        flushed = 0
        cursor = self._balances.find(
            {"due_at": due_by(older_than)},
            {"last": 1, "seq": 1, "user_id": 1, "next_expiry": 1, "holds.expires_at": 1}
            | {"unflushed": 1, "updated_at": 1},
        )
        async for raw in cursor:
            if not raw.get("unflushed") or raw["updated_at"] > older_than:
                continue  # due for another reason (Balance.due_at)
            await self.flush(Last.of(raw))
            holds = (hold["expires_at"] for hold in raw.get("holds", []))
            await self._balances.update_one(
                self._scope.scoped({"_id": raw["_id"], "seq": raw["seq"]}, [raw["user_id"]]),
                {"$set": {"unflushed": False, "due_at": due_at(raw.get("next_expiry"), *holds)}},
            )
            flushed += 1
        return flushed

    async def _publish(self, movements: list[Last]) -> None:
        """Step 6 for several balances' entries in one insert_many; an entry already there
        (a retry, a racing flush) is left as it is. Remembers what this process put there."""
        entries = [entry for movement in movements for entry in movement.entries]
        if not entries:
            return
        try:
            await self._ledger.insert_many(entries, ordered=False)
        except BulkWriteError as exc:
            duplicates_only(exc)
        for movement in movements:
            self._remember(movement.bid, movement.seq)

    def _remember(self, bid: str, seq: int) -> None:
        self._flushed[bid] = seq
        self._flushed.move_to_end(bid)
        if len(self._flushed) > FLUSHED_CACHE:
            self._flushed.popitem(last=False)

    async def _by_keys(
        self, lasts: dict[str, Last], keyed: list[_Request]
    ) -> dict[tuple[str, str], list[LedgerEntry]]:
        """Step 3: the entries each key already made, from the balances' last movements or
        the ledger (one lookup for the whole batch)."""
        found: dict[tuple[str, str], list[LedgerEntry]] = {}
        wanted: set[tuple[str, str]] = set()
        for request in keyed:
            assert request.key is not None, "only keyed movements are looked up"
            pair = (request.user_id, request.key)
            last = lasts.get(request.bid)
            for entry in [] if last is None else last.entries:
                if entry.get("idempotency_key") == request.key:
                    found[pair] = [LedgerEntry.model_validate(entry)]
            if pair not in found:
                wanted.add(pair)
        if wanted:
            keys = {"user_key": {"$in": sorted(user_key(*p) for p in wanted)}}
            cursor = self._ledger.find(self._scope.scoped(keys, (u for u, _ in wanted)))
            async for doc in cursor:
                found[doc["user_id"], doc["idempotency_key"]] = [LedgerEntry.model_validate(doc)]
        return found


_Texts = dict[str, tuple[Lot, str]]
"""Each lot's stored text, by lot id, with the lot it was made from."""


class _DecodedLots:
    """The lots this process last wrote to each balance, and their stored texts, by the
    last entry written with them: while a balance's `last` still ends with that entry (a
    fresh id at every write), its stored lots are these, so they are not decoded again
    (1,000 lots take 5 ms to decode). A `seq` would not do: a balance deleted and made
    again counts from 1 again. A bounded LRU, by lots held."""

    def __init__(self, max_lots: int = DECODED_LOTS) -> None:
        self._max_lots = max_lots
        self._held = 0
        self._by_balance: OrderedDict[str, tuple[ObjectId, list[Lot], _Texts]] = OrderedDict()

    def balance(self, raw: dict[str, Any]) -> Balance:
        """The balance read, its lots taken from here when they are current."""
        known = self._by_balance.get(raw["_id"])
        last = raw.get("last")
        if known is not None and last and last[-1]["_id"] == known[0]:
            raw = raw | {"lots": known[1]}
        balance: Balance = Balance.model_validate(raw)
        return balance

    def pack(self, bid: str, lots: list[Lot]) -> tuple[str, _Texts]:
        """The lots' stored text, made again only for the lots that are not the very
        objects written last time (lots are frozen: a debit replaces one lot of a
        thousand and keeps the others), and the texts to keep for next time."""
        known = self._by_balance.get(bid)
        kept = known[2] if known is not None else {}
        texts: _Texts = {}

        def text(lot: Lot) -> str:
            hit = kept.get(lot.id)
            made = hit[1] if hit is not None and hit[0] is lot else lot_text(lot)
            texts[lot.id] = (lot, made)
            return made

        return pack_lots(lots, text), texts

    def put(self, bid: str, last_entry: ObjectId, lots: list[Lot], texts: _Texts) -> None:
        old = self._by_balance.pop(bid, None)
        self._held -= len(old[1]) if old else 0
        self._by_balance[bid] = (last_entry, lots, texts)
        self._held += len(lots)
        while self._held > self._max_lots:
            _, (_, dropped, _) = self._by_balance.popitem(last=False)
            self._held -= len(dropped)


def _lapse_first(current: Balance | None, now: datetime) -> tuple[Balance | None, list[Posting]]:
    """Step 4's lapse: the balance without the tokens of lots that lapsed since it last
    moved (marked `lapsed_at`), and the expiry entry that says so ([] if none did)."""
    if current is None or current.next_expiry is None or current.next_expiry > now:
        return current, []
    lapsed = lapse(current.lots, now)
    if not lapsed.draws:
        return current, []
    ended = {d.lot_id for d in lapsed.draws}
    at = max(lot.expires for lot in current.lots if lot.id in ended and lot.expires)
    entry = Posting(
        tokens=-lapsed.tokens,
        reason=LedgerReason.EXPIRY,
        lots=lapsed.draws,
        note=f"lots {', '.join(sorted(ended))} expired",
    )
    seen = current.model_copy(
        update={"lots": lapsed.lots, "tokens": current.tokens - lapsed.tokens, "lapsed_at": at}
    )
    return seen, [entry]


CREDITS = frozenset({LedgerReason.PURCHASE, LedgerReason.GRANT})
"""The reasons of entries that make a lot: after one, the group's tokens no longer count as
lapsed (see `Balance.lapsed_at`)."""


def _lapsed_at(seen: Balance | None, outcome: Outcome) -> datetime | None:
    if seen is None or any(entry.reason in CREDITS for entry in outcome.entries):
        return None
    return seen.lapsed_at


def _update(
    outcome: Outcome,
    text: str,
    sums: Totals,
    entries: _Entries,
    now: datetime,
    lapsed_at: datetime | None,
) -> dict[str, Any]:
    """Step 5's update: the lots (`text`: in spending order, without the empty ones), the
    totals they give, the holds, when tokens last lapsed, and the movement's entries as
    `last`."""
    return {
        "$set": {
            "lapsed_at": lapsed_at,
            "tokens": sums.tokens,
            "reserved": sums.reserved,
            "seq": entries.seq,
            "lots": text,
            "holds": [hold.model_dump() for hold in outcome.holds],
            "next_expiry": sums.next_expiry,
            "last": entries.documents,
            "unflushed": True,
            "updated_at": now,
            # The lots' and holds' moments are all later than now: until the sweep marks
            # `last` as flushed, the balance is due at its write.
            "due_at": now,
        }
    }


def _entries(
    current: Balance | None, facts: list[Posting], user_id: str, offer_group: str, now: datetime
) -> _Entries:
    """The movement's entries as ledger documents, numbered from the balance's `seq`, each
    carrying the running balance after it, with ids that sort after the balance's previous
    entry (see services/ids.py), so the ledger lists them in the order they committed."""
    seq = current.seq if current else 0
    running = current.tokens if current else 0
    last = current.last[-1]["_id"] if current and current.last else None
    previous = last if isinstance(last, ObjectId) else None
    documents = []
    for entry in facts:
        seq += 1
        running += entry.released + entry.tokens
        previous = ordered_id(now, after=previous)
        document = {
            "_id": previous,
            "user_id": user_id,
            "offer_group": offer_group,
            "tokens": entry.tokens,
            "balance_after": running,
            "seq": seq,
            "reason": entry.reason.value,
            "lots": [d.model_dump() for d in entry.lots],
            "created_at": now,
        }
        # Facts an entry does not have are left out rather than stored as null: the sparse
        # indexes on them then hold only the entries that have them, and every entry is
        # written twice (the balance's `last`, the ledger).
        optional = {
            "note": entry.note,
            "order_id": entry.order_id,
            "reservation_id": entry.reservation_id,
            "idempotency_key": entry.idempotency_key,
            "released": entry.released or None,
        }
        document |= {name: value for name, value in optional.items() if value is not None}
        if entry.idempotency_key is not None:
            document["user_key"] = user_key(user_id, entry.idempotency_key)
        documents.append(document)
    if not documents or previous is None:
        raise Impossible(f"a movement of {offer_group!r} of user {user_id} has no entries")
    return _Entries(documents, seq=seq, balance_after=running, created_at=now, last_id=previous)


def _check(entries: _Entries, sums: Totals, request: _Request) -> None:
    """The first line of the invariant, before anything is written."""
    if entries.balance_after != sums.tokens:
        raise Impossible(
            f"a decision for {request.offer_group!r} of user {request.user_id} moved lots by "
            f"other amounts than its entries: the ledger would no longer add up to the balance"
        )
