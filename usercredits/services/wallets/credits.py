"""Credits: every purchase and grant adds a lot of its own (its period, its priority);
a refund takes back what is left of its order's lot. Part of `Wallets`
(services/wallets/__init__.py)."""

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId

from usercredits.models import Balance
from usercredits.services.clock import to_millis
from usercredits.services.errors import InvalidInput, shown
from usercredits.services.limits import check_tokens
from usercredits.services.wallets.base import WalletBase, same_request
from usercredits.services.wallets.lots import take_back, with_lot
from usercredits.services.wallets.movements import Outcome, Posting
from usercredits.values import LedgerEntry, LedgerReason, Lot, LotDraw, LotSource
from usercredits.values.lots import MAX_TOKENS
from usercredits.values.numbers import is_whole

ORDER_PRIORITY = 50


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


class Credits(WalletBase):
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
        if not is_whole(priority) or not 0 <= priority <= 100:
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

        def decide(balance: Balance | None, now: datetime) -> Outcome:
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
            entry = Posting(
                tokens=credit.tokens,
                reason=credit.reason,
                lots=[LotDraw(lot_id=lot.id, tokens=credit.tokens)],
                note=credit.note,
                order_id=credit.order_id,
                idempotency_key=credit.idempotency_key,
            )
            holds = balance.holds if balance else []
            return Outcome(
                lots=with_lot(balance.lots if balance else [], lot), holds=holds, entries=[entry]
            )

        *_, entry = await self._movements.move(
            user_id=credit.user_id,
            offer_group=credit.offer_group,
            decide=decide,
            key=credit.idempotency_key,
        )
        return same_request(entry, credit.idempotency_key, credit.offer_group, credit.tokens)

    async def take_back(
        self, *, user_id: str, offer_group: str, tokens: int, order_id: str
    ) -> LedgerEntry | None:
        """A refunded order's lot gives back what is left of it, once, and ends (see
        lots.take_back): tokens already spent stay spent, tokens held by reservations are
        theirs, and the entry's note says how many of each. None if nothing was ever
        credited."""

        def decide(balance: Balance | None, now: datetime) -> Outcome | None:
            if balance is None:
                return None
            held = sum(lot.held for lot in balance.lots if lot.order_id == order_id)
            taken = take_back(balance.lots, order_id, now)
            spent = tokens - taken.tokens - held
            entry = Posting(
                tokens=-taken.tokens,
                reason=LedgerReason.REFUND,
                lots=taken.draws,
                note=f"refund of order {order_id}: took back {taken.tokens} of {tokens} "
                f"tokens, {spent} already spent could not be recovered"
                + (f", {held} held by reservations expire if given back" if held else ""),
                order_id=order_id,
                idempotency_key=f"refund:{order_id}",
            )
            return Outcome(lots=taken.lots, holds=balance.holds, entries=[entry])

        entries = await self._movements.move(
            user_id=user_id, offer_group=offer_group, decide=decide, key=f"refund:{order_id}"
        )
        return entries[-1] if entries else None
