"""Wallet balances per offer group and their ledger. No GraphQL, no HTTP.

THE INVARIANT. For every (user, offer group), at every committed moment:

    sum(ledger.tokens)  ==  balance.tokens                  (spendable)
    balance.reserved    ==  sum(tokens of HELD reservations)
    each entry's balance_after == the running sum of the group's entries up to it, in
    the order of `seq`, which the balance counts up with every movement (ids are made by
    clients, so their order is not the commit order across processes)
    balance.tokens >= 0 and balance.reserved >= 0

Reserving moves tokens out of `tokens` into `reserved` with a `reservation` entry (-n);
committing gives them back with a `release` entry (+n) and debits what was used with a
`consumption` entry (-k); releasing writes the `release` entry alone. So the ledger explains
every spendable token, and nothing moves without an entry.

WHY A TRANSACTION. A debit must change the balance and append its entry atomically, and a
retry with the same idempotency key must not debit again. A single conditional `$inc` on the
balance cannot also insert into the ledger collection, and keeping entries inside the balance
document would leave the ledger (which is paginated and queried across groups) behind the
balance for some readers. So each movement is one transaction: a guarded
`find_one_and_update` on the balance (the guard is the overdraft and expiry check) plus one
ledger insert whose unique (user, idempotency key) index makes a replay fail and abort.
Concurrent writers to one balance conflict, and the loser is retried by the driver.
"""

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from models import Balance, LedgerEntry, LedgerReason, Reservation, ReservationStatus
from services.access import Principal
from services.clock import Clock
from services.errors import (
    Conflict,
    Expired,
    InsufficientTokens,
    InvalidInput,
    NotFound,
    shown,
)
from services.ids import object_id
from services.limits import DEFAULT_LIMITS, InputLimits, check_tokens
from services.transactions import in_transaction

log = logging.getLogger(__name__)

MAX_TOKENS = 2**31 - 1
"""The most a balance may hold: GraphQL's Int, in which balances are reported."""
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: list[LedgerEntry]
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class Credit:
    """Tokens to add to a group, and the period they are valid for (expires None: never)."""

    user_id: str
    offer_group: str
    tokens: int
    starts: datetime
    expires: datetime | None
    reason: LedgerReason
    idempotency_key: str
    order_id: str | None = None
    note: str | None = None


class _KeyUsed(Exception):
    """The idempotency key already has an entry: the transaction aborts, the entry is replayed."""


def merged_period(
    balance: Balance | None, starts: datetime, expires: datetime | None, now: datetime
) -> tuple[datetime, datetime | None]:
    """The group's period after a credit valid from `starts` to `expires`.

    A group that was never credited, or has lapsed, takes the credit's period. A live group
    keeps its earliest start and the latest expiry; a credit that never expires (or a group
    that never expires) makes the group never expire, so purchased tokens are not lost.
    """
    if (
        balance is None
        or balance.starts is None
        or (balance.expires is not None and balance.expires <= now)
    ):
        return starts, expires
    new_expires = (
        None if balance.expires is None or expires is None else max(balance.expires, expires)
    )
    return min(balance.starts, starts), new_expires


class Wallets:
    """Balances, the ledger, grants, debits and reservations of every user."""

    def __init__(
        self, *, client: AsyncMongoClient[Any], clock: Clock, limits: InputLimits = DEFAULT_LIMITS
    ) -> None:
        self._client = client
        self._clock = clock
        self._limits = limits
        self._balances = Balance.get_pymongo_collection()
        self._ledger = LedgerEntry.get_pymongo_collection()
        self._reservations = Reservation.get_pymongo_collection()

    # -- reads ---------------------------------------------------------------------------

    async def balances(self, *, user_id: str) -> list[Balance]:
        """The user's balances, one per group that was ever credited, by group name."""
        cursor = self._balances.find({"user_id": user_id, "starts": {"$ne": None}})
        return [Balance.model_validate(doc) async for doc in cursor.sort("offer_group", 1)]

    async def balance(self, *, user_id: str, offer_group: str) -> Balance | None:
        doc = await self._balances.find_one(
            {"user_id": user_id, "offer_group": offer_group, "starts": {"$ne": None}}
        )
        return None if doc is None else Balance.model_validate(doc)

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
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first}")
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
        return reservation

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
        """Debits spendable tokens once per key; InsufficientTokens or Expired change nothing."""
        check_tokens(tokens)
        self._limits.key(idempotency_key)
        self._limits.group(offer_group)
        self._limits.note(note)

        async def work(session: AsyncClientSession) -> LedgerEntry:
            after = await self._debit(session, user_id, offer_group, tokens)
            return await self._append(
                session,
                LedgerEntry(
                    user_id=user_id,
                    offer_group=offer_group,
                    tokens=-tokens,
                    balance_after=after["tokens"],
                    seq=after["seq"],
                    reason=LedgerReason.CONSUMPTION,
                    note=note,
                    idempotency_key=idempotency_key,
                    created_at=self._clock.now(),
                ),
            )

        try:
            return await in_transaction(self._client, work)
        except _KeyUsed:
            pass
        except (InsufficientTokens, Expired, NotFound):
            # A racing twin with this key may have taken the last tokens: it is a replay.
            if await self._entry_by_key(user_id, idempotency_key) is None:
                raise
        return await self._replay(user_id, idempotency_key, offer_group, -tokens)

    async def _debit(
        self,
        session: AsyncClientSession,
        user_id: str,
        offer_group: str,
        tokens: int,
        *,
        hold: bool = False,
    ) -> dict[str, Any]:
        """One guarded update: succeeds only with enough spendable tokens in a live group."""
        now = self._clock.now()
        inc = {"tokens": -tokens, "seq": 1}
        if hold:
            inc["reserved"] = tokens
        after: dict[str, Any] | None = await self._balances.find_one_and_update(
            {
                "user_id": user_id,
                "offer_group": offer_group,
                "tokens": {"$gte": tokens},
                "$or": [{"expires": None}, {"expires": {"$gt": now}}],
            },
            {"$inc": inc, "$set": {"updated_at": now}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if after is not None:
            return after
        current = await self._balances.find_one(
            {"user_id": user_id, "offer_group": offer_group}, session=session
        )
        if current is None or current.get("starts") is None:
            raise NotFound(f"user {user_id} has no wallet balance in {offer_group!r}")
        if current["expires"] is not None and current["expires"] <= now:
            raise Expired(
                f"the tokens of user {user_id} in {offer_group!r} expired at "
                f"{current['expires'].isoformat()}"
            )
        raise InsufficientTokens(
            f"user {user_id} has {current['tokens']} tokens in {offer_group!r}, needs {tokens}"
        )

    async def _append(self, session: AsyncClientSession, entry: LedgerEntry) -> LedgerEntry:
        try:
            await entry.insert(session=session)
        except DuplicateKeyError:
            raise _KeyUsed() from None
        return entry

    async def _entry_by_key(self, user_id: str, key: str) -> LedgerEntry | None:
        doc = await self._ledger.find_one({"user_id": user_id, "idempotency_key": key})
        return None if doc is None else LedgerEntry.model_validate(doc)

    async def _replay(self, user_id: str, key: str, offer_group: str, tokens: int) -> LedgerEntry:
        """The entry first written under `key`, if it was for the same movement."""
        entry = await self._entry_by_key(user_id, key)
        if entry is None:
            raise Conflict(f"idempotency key {key!r} is in use by an unfinished operation")
        if entry.offer_group != offer_group or entry.tokens != tokens:
            raise Conflict(
                f"idempotency key {key!r} was used for {entry.tokens} tokens in "
                f"{entry.offer_group!r}; a retry must repeat the same request"
            )
        return entry

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
    ) -> LedgerEntry:
        """Adds tokens outside a purchase (admins, promotions), once per key."""
        check_tokens(tokens)
        self._limits.key(idempotency_key)
        self._limits.group(offer_group)
        self._limits.note(note)
        now = self._clock.now()
        if expires is not None and expires.tzinfo is None:
            raise InvalidInput("expires needs a time zone, as in 2030-01-31T00:00:00Z")
        if expires is not None and expires <= now:
            raise InvalidInput(f"expires {expires.isoformat()} is not in the future")
        credit = Credit(
            user_id=user_id,
            offer_group=offer_group,
            tokens=tokens,
            starts=now,
            expires=expires,
            reason=LedgerReason.GRANT,
            idempotency_key=idempotency_key,
            note=note,
        )
        await self.open_balance(user_id=user_id, offer_group=offer_group)
        try:
            return await in_transaction(self._client, lambda s: self.credit(s, credit))
        except _KeyUsed:
            return await self._replay(user_id, idempotency_key, offer_group, tokens)

    async def credit(self, session: AsyncClientSession, credit: Credit) -> LedgerEntry:
        """Credits a group inside the caller's transaction (orders pay through this).

        A lapsed group that still holds tokens loses them first, with an expiry entry, so the
        sweep can never take the new tokens for old ones. Raises _KeyUsed on a replay.
        The caller opens the balance (`open_balance`) before its transaction starts.
        """
        now = self._clock.now()
        raw = await self._balances.find_one(
            {"user_id": credit.user_id, "offer_group": credit.offer_group}, session=session
        )
        if raw is None:
            raise RuntimeError(
                f"open_balance({credit.user_id!r}, {credit.offer_group!r}) "
                f"must run before the crediting transaction"
            )
        current = Balance.model_validate(raw)
        if current.tokens + current.reserved + credit.tokens > MAX_TOKENS:
            raise InvalidInput(
                f"user {credit.user_id} would hold more than {MAX_TOKENS} tokens in "
                f"{credit.offer_group!r}"
            )
        if current.expires is not None and current.expires <= now and current.tokens > 0:
            await self._expire_group(session, current, now)
        starts, expires = merged_period(current, credit.starts, credit.expires, now)
        after = await self._updated(
            {"_id": current.id},
            {
                "$inc": {"tokens": credit.tokens, "seq": 1},
                "$set": {"starts": starts, "expires": expires, "updated_at": now},
            },
            session=session,
        )
        return await self._append(
            session,
            LedgerEntry(
                user_id=credit.user_id,
                offer_group=credit.offer_group,
                tokens=credit.tokens,
                balance_after=after["tokens"],
                seq=after["seq"],
                reason=credit.reason,
                note=credit.note,
                order_id=credit.order_id,
                idempotency_key=credit.idempotency_key,
                created_at=now,
            ),
        )

    async def _updated(
        self, query: dict[str, Any], update: dict[str, Any], *, session: AsyncClientSession
    ) -> dict[str, Any]:
        """Updates a balance the transaction knows exists, returning it after the update."""
        after: dict[str, Any] | None = await self._balances.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER, session=session
        )
        if after is None:
            raise RuntimeError(f"balance {query} vanished inside a transaction")
        return after

    async def take_back(
        self,
        session: AsyncClientSession,
        *,
        user_id: str,
        offer_group: str,
        tokens: int,
        order_id: str,
    ) -> LedgerEntry:
        """Debits a refunded order's tokens inside the caller's transaction, never below zero:
        tokens already spent stay spent, and the entry's note says how many were not
        recovered."""
        now = self._clock.now()
        current = await self._balances.find_one(
            {"user_id": user_id, "offer_group": offer_group}, session=session
        )
        if current is None:
            raise RuntimeError(f"order {order_id} was paid, so its balance must exist")
        taken = min(tokens, int(current["tokens"]))
        after = await self._updated(
            {"_id": current["_id"]},
            {"$inc": {"tokens": -taken, "seq": 1}, "$set": {"updated_at": now}},
            session=session,
        )
        return await self._append(
            session,
            LedgerEntry(
                user_id=user_id,
                offer_group=offer_group,
                tokens=-taken,
                balance_after=after["tokens"],
                seq=after["seq"],
                reason=LedgerReason.REFUND,
                note=f"refund of order {order_id}: took back {taken} of {tokens} tokens, "
                f"{tokens - taken} already spent could not be recovered",
                order_id=order_id,
                idempotency_key=f"refund:{order_id}",
                created_at=now,
            ),
        )

    async def open_balance(self, *, user_id: str, offer_group: str) -> None:
        """Creates the empty balance outside any transaction: concurrent first credits would
        otherwise both insert it, and a duplicate-key error is not retryable in one. An
        opened balance that was never credited (starts None) is not shown to readers."""
        with contextlib.suppress(DuplicateKeyError):
            await self._balances.update_one(
                {"user_id": user_id, "offer_group": offer_group},
                {
                    "$setOnInsert": {
                        "tokens": 0,
                        "reserved": 0,
                        "seq": 0,
                        "starts": None,
                        "expires": None,
                        "updated_at": self._clock.now(),
                    }
                },
                upsert=True,
            )

    # -- expiry --------------------------------------------------------------------------

    async def _expire_group(
        self, session: AsyncClientSession, balance: Balance, now: datetime
    ) -> LedgerEntry | None:
        """Zeroes a lapsed group's spendable tokens with one expiry entry; None if already done."""
        before = await self._balances.find_one_and_update(
            {"_id": balance.id, "expires": {"$lte": now}, "tokens": {"$gt": 0}},
            {"$set": {"tokens": 0, "updated_at": now}, "$inc": {"seq": 1}},
            return_document=ReturnDocument.BEFORE,
            session=session,
        )
        if before is None:
            return None
        entry = LedgerEntry(
            user_id=balance.user_id,
            offer_group=balance.offer_group,
            tokens=-before["tokens"],
            balance_after=0,
            seq=before["seq"] + 1,
            reason=LedgerReason.EXPIRY,
            note=f"expired at {before['expires'].isoformat()}",
            created_at=now,
        )
        await entry.insert(session=session)
        return entry

    async def expire_lapsed_groups(self, *, now: datetime) -> list[LedgerEntry]:
        """The sweep's token half: every lapsed group with tokens loses them, once, even when
        two sweeps run at once (the guarded update lets only one of them match)."""
        entries = []
        cursor = self._balances.find({"expires": {"$lte": now}, "tokens": {"$gt": 0}})
        async for raw in cursor:
            balance = Balance.model_validate(raw)

            async def work(session: AsyncClientSession, b: Balance = balance) -> LedgerEntry | None:
                return await self._expire_group(session, b, now)

            entry = await in_transaction(self._client, work)
            if entry is not None:
                entries.append(entry)
        return entries

    # -- reservations --------------------------------------------------------------------

    async def reserve(
        self,
        *,
        user_id: str,
        offer_group: str,
        tokens: int,
        ttl_seconds: int,
        idempotency_key: str,
    ) -> Reservation:
        """Holds spendable tokens for a job; the same key returns the same reservation."""
        check_tokens(tokens)
        self._limits.key(idempotency_key)
        self._limits.group(offer_group)
        if (
            isinstance(ttl_seconds, bool)
            or not isinstance(ttl_seconds, int)
            or not (1 <= ttl_seconds <= 7 * 24 * 3600)
        ):
            raise InvalidInput(f"ttlSeconds must be between 1 and 604800, got {shown(ttl_seconds)}")
        now = self._clock.now()
        reservation = Reservation(
            user_id=user_id,
            offer_group=offer_group,
            tokens=tokens,
            status=ReservationStatus.HELD,
            expires_at=now + timedelta(seconds=ttl_seconds),
            idempotency_key=idempotency_key,
            created_at=now,
        )

        async def work(session: AsyncClientSession) -> Reservation:
            try:
                await reservation.insert(session=session)
            except DuplicateKeyError:
                raise _KeyUsed() from None
            after = await self._debit(session, user_id, offer_group, tokens, hold=True)
            await LedgerEntry(
                user_id=user_id,
                offer_group=offer_group,
                tokens=-tokens,
                balance_after=after["tokens"],
                seq=after["seq"],
                reason=LedgerReason.RESERVATION,
                reservation_id=str(reservation.id),
                created_at=now,
            ).insert(session=session)
            return reservation

        try:
            return await in_transaction(self._client, work)
        except (_KeyUsed, InsufficientTokens, Expired, NotFound):
            # A replay, or a racing twin with this key took the tokens first.
            doc = await self._reservations.find_one(
                {"user_id": user_id, "idempotency_key": idempotency_key}
            )
            if doc is None:
                raise
        existing: Reservation = Reservation.model_validate(doc)
        if existing.offer_group != offer_group or existing.tokens != tokens:
            raise Conflict(
                f"idempotency key {idempotency_key!r} holds {existing.tokens} tokens "
                f"in {existing.offer_group!r}; a retry must repeat the same request"
            )
        return existing

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
        closed, entry = await in_transaction(self._client, lambda s: self._settle(s, held, used))
        if closed and entry is not None:
            return entry
        doc = await self._ledger.find_one(
            {"reservation_id": reservation_id, "reason": LedgerReason.CONSUMPTION.value}
        )
        if doc is None:
            raise Conflict(f"reservation {reservation_id} was released; nothing to commit")
        first: LedgerEntry = LedgerEntry.model_validate(doc)
        return first

    async def release_reservation(self, *, reservation_id: str) -> Reservation:
        """Gives all held tokens back; releasing twice (or after a commit) changes nothing."""
        held = await self.reservation(reservation_id=reservation_id)
        await in_transaction(self._client, lambda s: self._settle(s, held, 0))
        return await self.reservation(reservation_id=reservation_id)

    async def _settle(
        self, session: AsyncClientSession, held: Reservation, used: int
    ) -> tuple[bool, LedgerEntry | None]:
        """Closes a held reservation: all tokens back (+n), then `used` debited (-used).

        Returns whether this call closed it, and the consumption entry if tokens were used.
        """
        status = ReservationStatus.COMMITTED if used else ReservationStatus.RELEASED
        closed = await self._reservations.find_one_and_update(
            {"_id": held.id, "status": ReservationStatus.HELD.value},
            {"$set": {"status": status.value}},
            session=session,
        )
        if closed is None:
            return False, None
        now = self._clock.now()
        after = await self._updated(
            {"user_id": held.user_id, "offer_group": held.offer_group},
            {
                "$inc": {
                    "tokens": held.tokens - used,
                    "reserved": -held.tokens,
                    "seq": 2 if used else 1,
                },
                "$set": {"updated_at": now},
            },
            session=session,
        )
        common = {
            "user_id": held.user_id,
            "offer_group": held.offer_group,
            "reservation_id": str(held.id),
            "created_at": now,
        }
        await LedgerEntry(
            tokens=held.tokens,
            balance_after=after["tokens"] + used,
            seq=after["seq"] - 1 if used else after["seq"],
            reason=LedgerReason.RELEASE,
            **common,
        ).insert(session=session)
        if not used:
            return True, None
        consumption = LedgerEntry(
            tokens=-used,
            balance_after=after["tokens"],
            seq=after["seq"],
            reason=LedgerReason.CONSUMPTION,
            **common,
        )
        await consumption.insert(session=session)
        return True, consumption

    async def release_expired_reservations(self, *, now: datetime) -> int:
        """The sweep's reservation half: held reservations past their ttl give tokens back."""
        released = 0
        cursor = self._reservations.find(
            {"status": ReservationStatus.HELD.value, "expires_at": {"$lte": now}}
        )
        async for raw in cursor:
            held = Reservation.model_validate(raw)

            async def work(session: AsyncClientSession, r: Reservation = held) -> bool:
                closed, _ = await self._settle(session, r, 0)
                return closed

            released += await in_transaction(self._client, work)
        return released
