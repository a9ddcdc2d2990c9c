"""Wallet balances per offer group, their lots and their ledger. No GraphQL, no HTTP.

THE INVARIANT. For every (user, offer group), at every moment:

    balance.tokens   == sum(lot.remaining)  == sum(ledger.tokens)
    balance.reserved == sum(lot.held)       == sum(hold.tokens)
    each entry's balance_after is the running sum of the group's entries in `seq` order,
    and `seq` counts 1, 2, 3... with no gap
    every lot.remaining >= 0 and lot.held >= 0

(the ledger sum counts the entries of the balance's `last` movement until they are in the
ledger collection: see services/movements.py, which writes every movement and checks the
first line before it writes). Holding moves tokens from a lot's `remaining` to its `held`
with a `reservation` entry (-n); settling gives them back with a `release` entry (+n) and
spends what was used with a `consumption` entry (-k). So the ledger explains every
spendable token, and nothing moves without an entry.

The operations below are plans: pure decisions on the balance they are shown, which the
movement primitive applies in one compare-and-set write, re-planning on a lost race.
"""

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId

from models import (
    Balance,
    Hold,
    LedgerEntry,
    LedgerReason,
    Lot,
    LotDraw,
    LotSource,
    Reservation,
    ReservationStatus,
    balance_id,
)
from services.access import Principal
from services.clock import Clock, due_by, to_millis
from services.errors import Conflict, Expired, InsufficientTokens, InvalidInput, NotFound, shown
from services.ids import object_id
from services.limits import DEFAULT_LIMITS, InputLimits, check_tokens
from services.lots import (
    Drawn,
    draw,
    lapse,
    live_lots,
    settle,
    spendable,
    take_back,
    with_lot,
)
from services.movements import Change, Entry, Movements

log = logging.getLogger(__name__)

MAX_TOKENS = 2**31 - 1
"""The most a balance may hold: GraphQL's Int, in which balances are reported."""
MAX_PAGE = 500
MAX_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_TTL_SECONDS = 900
"""How long a reservation holds its tokens when the caller does not say."""
ORDER_PRIORITY = 50
SWEEP_BATCH = 64
"""Balances the sweep moves at once (the movement primitive's batch)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExpiryForecast:
    at: datetime
    tokens: int


@dataclass(frozen=True, slots=True)
class BalanceView:
    """A group's balance as readers see it at `now`: only live lots count."""

    user_id: str
    offer_group: str
    tokens: int
    reserved: int
    starts: datetime
    expires: datetime | None
    """When the last live lot ends; None when one never does (or none is live)."""
    lots: list[Lot]
    """Live lots, in the order debits draw them."""
    next_expiry: ExpiryForecast | None

    @classmethod
    def of(cls, balance: Balance, now: datetime) -> "BalanceView":
        lots = live_lots(balance.lots, now)
        ends = [lot.expires for lot in lots]
        soonest = min((e for e in ends if e is not None), default=None)
        return cls(
            user_id=balance.user_id,
            offer_group=balance.offer_group,
            tokens=sum(lot.remaining for lot in lots),
            reserved=balance.reserved,
            starts=balance.starts,
            expires=None if not ends or None in ends else max(e for e in ends if e),
            lots=lots,
            next_expiry=None
            if soonest is None
            else ExpiryForecast(
                at=soonest, tokens=sum(lot.remaining for lot in lots if lot.expires == soonest)
            ),
        )


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: list[LedgerEntry]
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class Credit:
    """Tokens to add to a group as one lot, valid from `starts` to `expires` (None: never)."""

    user_id: str
    offer_group: str
    tokens: int
    starts: datetime
    expires: datetime | None
    reason: LedgerReason
    idempotency_key: str
    order_id: str | None = None
    note: str | None = None
    priority: int = ORDER_PRIORITY


class Wallets:
    """Balances, lots, the ledger, grants, debits and reservations of every user."""

    def __init__(
        self, *, movements: Movements, clock: Clock, limits: InputLimits = DEFAULT_LIMITS
    ) -> None:
        self._movements = movements
        self._clock = clock
        self._limits = limits
        self._balances = Balance.get_pymongo_collection()
        self._ledger = LedgerEntry.get_pymongo_collection()
        self._reservations = Reservation.get_pymongo_collection()

    # -- reads ---------------------------------------------------------------------------

    async def balances(self, *, user_id: str) -> list[BalanceView]:
        """The user's balances, one per group that was ever credited, by group name."""
        now = self._clock.now()
        cursor = self._balances.find({"user_id": user_id}).sort("offer_group", 1)
        return [BalanceView.of(Balance.model_validate(doc), now) async for doc in cursor]

    async def balance(self, *, user_id: str, offer_group: str) -> BalanceView | None:
        doc = await self._balances.find_one({"_id": balance_id(user_id, offer_group)})
        return (
            None if doc is None else BalanceView.of(Balance.model_validate(doc), self._clock.now())
        )

    async def ledger(
        self,
        *,
        user_id: str,
        offer_group: str | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> LedgerPage:
        """Entries newest first; `after` is the id of the last entry of the previous page."""
        if isinstance(first, bool) or not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {shown(first)}")
        query: dict[str, Any] = {"user_id": user_id}
        if offer_group is not None:
            query["offer_group"] = offer_group
        if after is not None:
            try:
                query["_id"] = {"$lt": ObjectId(after)}
            except Exception:
                raise InvalidInput(f"cursor {shown(after)} is not one this API returned") from None
        cursor = self._ledger.find(query).sort("_id", -1).limit(first + 1)
        docs = [LedgerEntry.model_validate(doc) async for doc in cursor]
        return LedgerPage(entries=docs[:first], has_next_page=len(docs) > first)

    async def reservation(
        self, *, reservation_id: str, visible_to: Principal | None = None
    ) -> Reservation:
        """The reservation; with `visible_to`, one that caller may not see is NotFound too,
        with the same message, so ids cannot be probed for their owners."""
        doc = await self._reservations.find_one({"_id": object_id(reservation_id, "reservation")})
        if doc is None or (visible_to is not None and not visible_to.may_see(doc["user_id"])):
            raise NotFound(f"reservation {reservation_id} does not exist")
        reservation: Reservation = Reservation.model_validate(doc)
        if reservation.status is ReservationStatus.HELD:
            return await self._current(reservation)
        return reservation

    async def _current(self, reservation: Reservation) -> Reservation:
        """A HELD reservation whose hold has left the balance was settled by a movement that
        did not get to record it here (a crash): its entries say how."""
        raw = await self._balances.find_one(
            {"_id": balance_id(reservation.user_id, reservation.offer_group)}
        )
        rid = str(reservation.id)
        if raw is not None and any(h["id"] == rid for h in raw.get("holds", [])):
            return reservation
        await self._movements.flush(raw)
        spent = await self._spent(rid)
        status = ReservationStatus.COMMITTED if spent else ReservationStatus.RELEASED
        await self._record(rid, status)
        updated: Reservation = reservation.model_copy(update={"status": status})
        return updated

    async def _spent(self, reservation_id: str) -> LedgerEntry | None:
        """The consumption entry of a committed reservation; None if it was not committed."""
        doc = await self._ledger.find_one(
            {"reservation_id": reservation_id, "reason": LedgerReason.CONSUMPTION.value}
        )
        return None if doc is None else LedgerEntry.model_validate(doc)

    async def _record(self, reservation_id: str, status: ReservationStatus) -> None:
        await self._reservations.update_one(
            {"_id": ObjectId(reservation_id), "status": ReservationStatus.HELD.value},
            {"$set": {"status": status.value}},
        )

    # -- debits --------------------------------------------------------------------------

    async def consume(
        self,
        *,
        user_id: str,
        offer_group: str,
        tokens: int,
        idempotency_key: str,
        note: str | None = None,
    ) -> LedgerEntry:
        """Debits live lots once per key; InsufficientTokens or Expired change nothing."""
        check_tokens(tokens)
        self._limits.key(idempotency_key)
        self._limits.group(offer_group)
        self._limits.note(note)

        def plan(balance: Balance | None, now: datetime) -> Change:
            balance, drawn = _draw(balance, user_id, offer_group, tokens, now, hold=False)
            entry = Entry(
                tokens=-tokens,
                reason=LedgerReason.CONSUMPTION,
                lots=drawn.draws,
                note=note,
                idempotency_key=idempotency_key,
            )
            return Change(lots=drawn.lots, holds=balance.holds, entries=[entry])

        [entry] = await self._movements.move(
            user_id=user_id, offer_group=offer_group, plan=plan, key=idempotency_key
        )
        return _same_request(entry, idempotency_key, offer_group, -tokens)

    async def reserve(
        self,
        *,
        user_id: str,
        offer_group: str,
        tokens: int,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        idempotency_key: str,
    ) -> Reservation:
        """Holds tokens of live lots for a job; the same key returns the same reservation."""
        check_tokens(tokens)
        self._limits.key(idempotency_key)
        self._limits.group(offer_group)
        if (
            isinstance(ttl_seconds, bool)
            or not isinstance(ttl_seconds, int)
            or not (1 <= ttl_seconds <= MAX_TTL_SECONDS)
        ):
            raise InvalidInput(
                f"ttlSeconds must be between 1 and {MAX_TTL_SECONDS}, got {shown(ttl_seconds)}"
            )
        key = f"reservation:{idempotency_key}"
        hold_id = str(ObjectId())

        def plan(balance: Balance | None, now: datetime) -> Change:
            balance, drawn = _draw(balance, user_id, offer_group, tokens, now, hold=True)
            hold = Hold(
                id=hold_id,
                tokens=tokens,
                draws=drawn.draws,
                expires_at=now + timedelta(seconds=ttl_seconds),
                idempotency_key=idempotency_key,
            )
            entry = Entry(
                tokens=-tokens,
                reason=LedgerReason.RESERVATION,
                lots=drawn.draws,
                reservation_id=hold_id,
                idempotency_key=key,
            )
            return Change(lots=drawn.lots, holds=[*balance.holds, hold], entries=[entry])

        [entry] = await self._movements.move(
            user_id=user_id, offer_group=offer_group, plan=plan, key=key
        )
        _same_request(entry, key, offer_group, -tokens)
        assert entry.reservation_id is not None, "a reservation entry names its reservation"
        reservation = Reservation(
            id=ObjectId(entry.reservation_id),
            user_id=user_id,
            offer_group=offer_group,
            tokens=tokens,
            status=ReservationStatus.HELD,
            expires_at=entry.created_at + timedelta(seconds=ttl_seconds),
            idempotency_key=idempotency_key,
            created_at=entry.created_at,
        )
        document = reservation.model_dump(by_alias=True, mode="python")
        document["_id"] = ObjectId(entry.reservation_id)
        await self._reservations.update_one(
            {"_id": document["_id"]}, {"$setOnInsert": document}, upsert=True
        )
        return await self.reservation(reservation_id=entry.reservation_id)

    async def commit_reservation(
        self, *, reservation_id: str, tokens: int | None = None
    ) -> LedgerEntry:
        """Debits `tokens` (default: all held) and gives the rest back. A second commit returns
        the first one's consumption entry; committing a released reservation is a Conflict."""
        held = await self.reservation(reservation_id=reservation_id)
        used = held.tokens if tokens is None else check_tokens(tokens)
        if used > held.tokens:
            raise InvalidInput(
                f"reservation {reservation_id} holds {held.tokens} tokens, cannot commit {used}"
            )
        if held.status is ReservationStatus.HELD and held.expires_at <= self._clock.now():
            raise Expired(
                f"reservation {reservation_id} expired at "
                f"{held.expires_at.isoformat()}; its tokens are being released"
            )
        entries = await self._settle(reservation_id, held.user_id, held.offer_group, used)
        if entries:
            return entries[-1]
        first = await self._spent(reservation_id)
        if first is None:
            raise Conflict(f"reservation {reservation_id} was released; nothing to commit")
        return first

    async def release_reservation(self, *, reservation_id: str) -> Reservation:
        """Gives all held tokens back; releasing twice (or after a commit) changes nothing."""
        held = await self.reservation(reservation_id=reservation_id)
        await self._settle(reservation_id, held.user_id, held.offer_group, 0)
        return await self.reservation(reservation_id=reservation_id)

    async def _settle(
        self, rid: str, user_id: str, offer_group: str, used: int
    ) -> list[LedgerEntry]:
        """Closes the held reservation `rid` of a balance: all its tokens back (+n) to the
        lots they came from, then `used` of them spent (-used). [] if it was already closed."""

        def plan(balance: Balance | None, now: datetime) -> Change | None:
            hold = next((h for h in balance.holds if h.id == rid), None) if balance else None
            if balance is None or hold is None:
                return None
            lots, spent = settle(balance.lots, hold.draws, used)
            entries = [
                Entry(
                    tokens=hold.tokens,
                    reason=LedgerReason.RELEASE,
                    lots=hold.draws,
                    reservation_id=rid,
                )
            ]
            if used:
                entries.append(
                    Entry(
                        tokens=-used,
                        reason=LedgerReason.CONSUMPTION,
                        lots=spent,
                        reservation_id=rid,
                    )
                )
            holds = [h for h in balance.holds if h.id != rid]
            return Change(lots=lots, holds=holds, entries=entries)

        entries = await self._movements.move(user_id=user_id, offer_group=offer_group, plan=plan)
        if entries:
            status = ReservationStatus.COMMITTED if used else ReservationStatus.RELEASED
            await self._record(rid, status)
        return entries

    async def release_expired_reservations(self, *, now: datetime) -> int:
        """The sweep's reservation half: held reservations past their ttl give tokens back."""

        async def release(raw: dict[str, Any]) -> int:
            released = 0
            for hold in raw["holds"]:
                if hold["expires_at"] <= now:
                    settled = await self._settle(hold["id"], raw["user_id"], raw["offer_group"], 0)
                    released += bool(settled)
            return released

        cursor = self._balances.find(
            {"holds.expires_at": due_by(now)}, {"holds": 1, "user_id": 1, "offer_group": 1}
        )
        return sum(await _batched(cursor, release))

    # -- credits -------------------------------------------------------------------------

    async def grant(
        self,
        *,
        user_id: str,
        offer_group: str,
        tokens: int,
        idempotency_key: str,
        expires: datetime | None = None,
        note: str | None = None,
        priority: int = ORDER_PRIORITY,
    ) -> LedgerEntry:
        """Adds a lot outside a purchase (admins, promotions), once per key."""
        check_tokens(tokens)
        self._limits.key(idempotency_key)
        self._limits.group(offer_group)
        self._limits.note(note)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 100:
            raise InvalidInput(f"priority must be between 0 and 100, got {shown(priority)}")
        now = self._clock.now()
        if expires is not None and expires.tzinfo is None:
            raise InvalidInput("expires needs a time zone, as in 2030-01-31T00:00:00Z")
        if expires is not None and expires <= now:
            raise InvalidInput(f"expires {expires.isoformat()} is not in the future")
        return await self.credit(
            Credit(
                user_id=user_id,
                offer_group=offer_group,
                tokens=tokens,
                starts=now,
                expires=expires,
                reason=LedgerReason.GRANT,
                idempotency_key=idempotency_key,
                note=note,
                priority=priority,
            )
        )

    async def credit(self, credit: Credit) -> LedgerEntry:
        """Adds one lot to a group, once per key (orders pay through this)."""

        def plan(balance: Balance | None, now: datetime) -> Change:
            held = balance.tokens + balance.reserved if balance else 0
            if held + credit.tokens > MAX_TOKENS:
                raise InvalidInput(
                    f"user {credit.user_id} would hold more than {MAX_TOKENS} tokens in "
                    f"{shown(credit.offer_group)}"
                )
            lot = Lot(
                id=str(ObjectId()),
                source=LotSource.ORDER if credit.order_id else LotSource.GRANT,
                order_id=credit.order_id,
                tokens=credit.tokens,
                remaining=credit.tokens,
                starts=to_millis(credit.starts),
                expires=None if credit.expires is None else to_millis(credit.expires),
                priority=credit.priority,
                note=credit.note,
                created_at=now,
            )
            entry = Entry(
                tokens=credit.tokens,
                reason=credit.reason,
                lots=[LotDraw(lot_id=lot.id, tokens=credit.tokens)],
                note=credit.note,
                order_id=credit.order_id,
                idempotency_key=credit.idempotency_key,
            )
            holds = balance.holds if balance else []
            return Change(
                lots=with_lot(balance.lots if balance else [], lot), holds=holds, entries=[entry]
            )

        [entry] = await self._movements.move(
            user_id=credit.user_id,
            offer_group=credit.offer_group,
            plan=plan,
            key=credit.idempotency_key,
        )
        return _same_request(entry, credit.idempotency_key, credit.offer_group, credit.tokens)

    async def take_back(
        self, *, user_id: str, offer_group: str, tokens: int, order_id: str
    ) -> LedgerEntry | None:
        """A refunded order's lot gives back what is left of it, once: tokens already spent
        stay spent, and the entry's note says how many. None if nothing was ever credited."""

        def plan(balance: Balance | None, now: datetime) -> Change | None:
            if balance is None:
                return None
            taken = take_back(balance.lots, order_id)
            entry = Entry(
                tokens=-taken.tokens,
                reason=LedgerReason.REFUND,
                lots=taken.draws,
                note=f"refund of order {order_id}: took back {taken.tokens} of {tokens} "
                f"tokens, {tokens - taken.tokens} already spent could not be recovered",
                order_id=order_id,
                idempotency_key=f"refund:{order_id}",
            )
            return Change(lots=taken.lots, holds=balance.holds, entries=[entry])

        entries = await self._movements.move(
            user_id=user_id, offer_group=offer_group, plan=plan, key=f"refund:{order_id}"
        )
        return entries[0] if entries else None

    # -- expiry --------------------------------------------------------------------------

    async def flush_idle(self, *, older_than: datetime) -> int:
        """The sweep's recovery half: see Movements.flush_idle."""
        return await self._movements.flush_idle(older_than=older_than)

    async def expire_lapsed_groups(self, *, now: datetime) -> list[LedgerEntry]:
        """The sweep's token half: every lapsed lot loses its spendable tokens, once, with
        an expiry entry naming the lots, even when two sweeps run at once."""

        async def expire(raw: dict[str, Any]) -> list[LedgerEntry]:
            return await self._movements.move(
                user_id=raw["user_id"], offer_group=raw["offer_group"], plan=_lapse
            )

        cursor = self._balances.find({"next_expiry": due_by(now)}, {"user_id": 1, "offer_group": 1})
        return [entry for entries in await _batched(cursor, expire) for entry in entries]


async def _batched(
    documents: AsyncIterable[dict[str, Any]], handle: Callable[[dict[str, Any]], Awaitable[T]]
) -> list[T]:
    """`handle` of every document, SWEEP_BATCH at a time concurrently: the movement
    primitive then writes a batch's balances in one command of each kind, where one at a
    time would cost each balance its own commands."""
    results: list[T] = []
    batch: list[dict[str, Any]] = []
    async for document in documents:
        batch.append(document)
        if len(batch) == SWEEP_BATCH:
            results += await asyncio.gather(*map(handle, batch))
            batch = []
    results += await asyncio.gather(*map(handle, batch))
    return results


def _lapse(balance: Balance | None, now: datetime) -> Change | None:
    if balance is None:
        return None
    lapsed = lapse(balance.lots, now)
    if not lapsed.draws:
        return None
    ends = sorted({d.lot_id for d in lapsed.draws})
    entry = Entry(
        tokens=-lapsed.tokens,
        reason=LedgerReason.EXPIRY,
        lots=lapsed.draws,
        note=f"lots {', '.join(ends)} expired",
    )
    return Change(lots=lapsed.lots, holds=balance.holds, entries=[entry])


def _draw(
    balance: Balance | None,
    user_id: str,
    offer_group: str,
    tokens: int,
    now: datetime,
    *,
    hold: bool,
) -> tuple[Balance, Drawn]:
    """Draws `tokens` (or holds them) from the balance's live lots, or refuses."""
    drawn = draw(balance.lots if balance else [], tokens, now, hold=hold)
    if balance is None or drawn is None:
        raise _shortfall(balance, user_id, offer_group, tokens, now)
    return balance, drawn


def _shortfall(
    balance: Balance | None, user_id: str, offer_group: str, tokens: int, now: datetime
) -> InsufficientTokens | Expired:
    """Why a debit cannot be made: all the group's tokens have expired (and the sweep has
    not removed them yet), or there are too few."""
    lots = balance.lots if balance else []
    live = spendable(lots, now)
    if live == 0 and any(lot.remaining for lot in lots):
        ended = max(lot.expires for lot in lots if lot.expires and lot.expires <= now)
        return Expired(
            f"the tokens of user {user_id} in {shown(offer_group)} expired at {ended.isoformat()}"
        )
    return InsufficientTokens(
        f"user {user_id} has {live} tokens in {shown(offer_group)}, needs {tokens}"
    )


def _same_request(entry: LedgerEntry, key: str, offer_group: str, tokens: int) -> LedgerEntry:
    """A replayed key must repeat the request that first used it."""
    if entry.offer_group != offer_group or entry.tokens != tokens:
        raise Conflict(
            f"idempotency key {shown(key)} was used for {entry.tokens} tokens in "
            f"{shown(entry.offer_group)}; a retry must repeat the same request"
        )
    return entry
