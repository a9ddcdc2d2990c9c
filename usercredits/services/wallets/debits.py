"""Debits and reservations: a debit draws live lots in spending order; a reservation
holds tokens of particular lots until it is committed (spent) or released (given back to
the same lots), by its caller or, past its ttl, by the sweep. Part of `Wallets`
(services/wallets/__init__.py)."""

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from usercredits.models import Balance, ReservationDocument, balance_id
from usercredits.services.clock import due_by
from usercredits.services.errors import (
    Expired,
    InsufficientTokens,
    InvalidInput,
    NotFound,
    ReservationReleased,
    shown,
)
from usercredits.services.identity.access import Principal
from usercredits.services.ids import object_id
from usercredits.services.limits import check_tokens
from usercredits.services.wallets.base import WalletBase, batched, same_request
from usercredits.services.wallets.lots import Drawn, draw, settle, spendable
from usercredits.services.wallets.movements import Decision, Last, Outcome, Posting
from usercredits.values import Hold, LedgerEntry, LedgerReason, Reservation, ReservationStatus
from usercredits.values.numbers import is_whole

MAX_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_TTL_SECONDS = 900
"""How long a reservation holds its tokens when the caller does not say."""


class Debits(WalletBase):
    async def reservation(
        self,
        *,
        reservation_id: str,
        visible_to: Principal | None = None,
        user_id: str | None = None,
    ) -> Reservation:
        """The reservation; with `visible_to`, one that caller may not see is NotFound too,
        with the same message, so ids cannot be probed for their owners. `user_id`, the
        owner when the caller knows it, lets a sharded cluster ask that user's shard alone
        (as does a caller who may see only its own)."""
        query = {"_id": object_id(reservation_id, "reservation")}
        owner = user_id or (visible_to.sole_owner if visible_to is not None else None)
        if owner is not None:
            query = self._scope.scoped(query, [owner])
        doc = await self._reservations.find_one(query)
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
            self._scope.scoped(
                {"_id": balance_id(reservation.user_id, reservation.offer_group)},
                [reservation.user_id],
            )
        )
        rid = str(reservation.id)
        if raw is not None and any(h["id"] == rid for h in raw.get("holds", [])):
            return reservation
        await self._movements.flush(None if raw is None else Last.of(raw))
        spent = await self._spent(rid, reservation.user_id)
        status = ReservationStatus.COMMITTED if spent else ReservationStatus.RELEASED
        await self._record(rid, reservation.user_id, status)
        updated: Reservation = reservation.model_copy(update={"status": status})
        return updated

    async def _spent(self, reservation_id: str, user_id: str) -> LedgerEntry | None:
        """The consumption entry of a committed reservation; None if it was not committed."""
        consumption = {"reservation_id": reservation_id, "reason": LedgerReason.CONSUMPTION.value}
        doc = await self._ledger.find_one(self._scope.scoped(consumption, [user_id]))
        return None if doc is None else LedgerEntry.model_validate(doc)

    async def _record(self, reservation_id: str, user_id: str, status: ReservationStatus) -> None:
        held = {"_id": ObjectId(reservation_id), "status": ReservationStatus.HELD.value}
        await self._reservations.update_one(
            self._scope.scoped(held, [user_id]), {"$set": {"status": status.value}}
        )

    # -- movements ----------------------------------------------------------------------

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

        def decide(balance: Balance | None, now: datetime) -> Outcome:
            balance, drawn = _draw(balance, user_id, offer_group, tokens, now, hold=False)
            entry = Posting(
                tokens=-tokens,
                reason=LedgerReason.CONSUMPTION,
                lots=drawn.draws,
                note=note,
                idempotency_key=idempotency_key,
            )
            return Outcome(lots=drawn.lots, holds=balance.holds, entries=[entry])

        entry = await self._draw_tokens(user_id, offer_group, decide, idempotency_key)
        return same_request(entry, idempotency_key, offer_group, -tokens)

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
        if not is_whole(ttl_seconds) or not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidInput(
                f"ttlSeconds must be between 1 and {MAX_TTL_SECONDS}, got {shown(ttl_seconds)}"
            )
        key = f"reservation:{idempotency_key}"
        hold_id = str(ObjectId())

        def decide(balance: Balance | None, now: datetime) -> Outcome:
            balance, drawn = _draw(balance, user_id, offer_group, tokens, now, hold=True)
            hold = Hold(
                id=hold_id,
                tokens=tokens,
                draws=drawn.draws,
                expires_at=now + timedelta(seconds=ttl_seconds),
                idempotency_key=idempotency_key,
            )
            entry = Posting(
                tokens=-tokens,
                reason=LedgerReason.RESERVATION,
                lots=drawn.draws,
                reservation_id=hold_id,
                idempotency_key=key,
            )
            return Outcome(lots=drawn.lots, holds=[*balance.holds, hold], entries=[entry])

        entry = await self._draw_tokens(user_id, offer_group, decide, key)
        same_request(entry, key, offer_group, -tokens)
        assert entry.reservation_id is not None, "a reservation entry names its reservation"
        reservation = ReservationDocument(
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
            self._scope.scoped({"_id": document["_id"]}, [user_id]),
            {"$setOnInsert": document},
            upsert=True,
        )
        return await self.reservation(reservation_id=entry.reservation_id, user_id=user_id)

    async def _draw_tokens(
        self, user_id: str, offer_group: str, decide: Decision, key: str
    ) -> LedgerEntry:
        """The one entry of a debit or reservation. A refusal for want of live tokens is
        also told to the event hub: it writes nothing, so without it an auto top-up rule
        would not hear of a group left empty (its card refused and since replaced, or its
        trigger missed while a process stopped)."""
        try:
            *_, entry = await self._movements.move(
                user_id=user_id, offer_group=offer_group, decide=decide, key=key
            )
        except (InsufficientTokens, Expired):
            if self._events is not None:
                self._events.publish_shortfall(user_id, offer_group)
            raise
        return entry

    async def commit_reservation(
        self, *, reservation_id: str, tokens: int | None = None, user_id: str | None = None
    ) -> LedgerEntry:
        """Debits `tokens` (default: all held) and gives the rest back. A second commit returns
        the first one's consumption entry; committing a released reservation is a Conflict.
        `user_id`: the owner, when known (see `reservation`)."""
        held = await self.reservation(reservation_id=reservation_id, user_id=user_id)
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
        first = await self._spent(reservation_id, held.user_id)
        if first is None:
            raise ReservationReleased(
                f"reservation {reservation_id} was released; nothing to commit"
            )
        return first

    async def release_reservation(
        self, *, reservation_id: str, user_id: str | None = None
    ) -> Reservation:
        """Gives all held tokens back; releasing twice (or after a commit) changes nothing.
        `user_id`: the owner, when known (see `reservation`)."""
        held = await self.reservation(reservation_id=reservation_id, user_id=user_id)
        await self._settle(reservation_id, held.user_id, held.offer_group, 0)
        return await self.reservation(reservation_id=reservation_id, user_id=held.user_id)

    async def _settle(
        self, rid: str, user_id: str, offer_group: str, used: int
    ) -> list[LedgerEntry]:
        """Closes the held reservation `rid` of a balance in one entry: a release gives all
        its tokens back (+n) to the lots they came from; a commit releases the hold
        (`released`) and spends `used` of it (-used) in the same entry, so a live view sees
        the balance move once, to what is left. [] if it was already closed."""

        def decide(balance: Balance | None, now: datetime) -> Outcome | None:
            hold = next((h for h in balance.holds if h.id == rid), None) if balance else None
            if balance is None or hold is None:
                return None
            lots, spent = settle(balance.lots, hold.draws, used)
            if used:
                entry = Posting(
                    tokens=-used,
                    reason=LedgerReason.CONSUMPTION,
                    lots=spent,
                    reservation_id=rid,
                    released=hold.tokens,
                )
            else:
                entry = Posting(
                    tokens=hold.tokens,
                    reason=LedgerReason.RELEASE,
                    lots=hold.draws,
                    reservation_id=rid,
                )
            holds = [h for h in balance.holds if h.id != rid]
            return Outcome(lots=lots, holds=holds, entries=[entry])

        entries = await self._movements.move(
            user_id=user_id, offer_group=offer_group, decide=decide
        )
        if entries:
            status = ReservationStatus.COMMITTED if used else ReservationStatus.RELEASED
            await self._record(rid, user_id, status)
        return entries

    async def release_expired_reservations(self, *, now: datetime) -> list[LedgerEntry]:
        """The sweep's reservation half: held reservations past their ttl give tokens back.
        Returns the entries written: each release, and the expiry of any lots that had
        lapsed before it (a movement writes those first)."""

        async def release(raw: dict[str, Any]) -> list[LedgerEntry]:
            written = []
            for hold in map(Hold.model_validate, raw["holds"]):
                if hold.expires_at <= now:
                    written += await self._settle(hold.id, raw["user_id"], raw["offer_group"], 0)
            return written

        cursor = self._balances.find(
            {"due_at": due_by(now)}, {"holds": 1, "user_id": 1, "offer_group": 1}
        )
        return [entry for entries in await batched(cursor, release) for entry in entries]


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
    """Why a debit cannot be made. EXPIRED: the group has no spendable tokens and tokens of
    it lapsed unspent since it was last credited; INSUFFICIENT_TOKENS otherwise. The
    balance a decision sees has already lost its lapsed lots' tokens and carries `lapsed_at`
    (services/wallets/movements.py), so the answer is the same before and after a sweep."""
    live = spendable(balance.lots, now) if balance else 0
    if live == 0 and balance is not None and balance.lapsed_at is not None:
        return Expired(
            f"the tokens of user {user_id} in {shown(offer_group)} expired at "
            f"{balance.lapsed_at.isoformat()}"
        )
    return InsufficientTokens(
        f"user {user_id} has {live} tokens in {shown(offer_group)}, needs {tokens}"
    )
