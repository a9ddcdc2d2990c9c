"""Ledger entries and reservations as the layers pass them: the facts a stored document
holds (`...Fields`, which the document in models/ also declares) and the frozen value
read from it."""

from datetime import datetime

from pydantic import BaseModel, Field

from usercredits.values.enums import LedgerReason, ReservationStatus
from usercredits.values.lots import LotDraw
from usercredits.values.stored import Stored


class LedgerEntryFields(BaseModel):
    user_id: str
    offer_group: str
    tokens: int
    balance_after: int
    released: int = 0
    """Held tokens the entry gives back before its `tokens` count (a commit releases its
    hold and spends part of it): `balance_after` is the previous entry's plus `released`
    plus `tokens`."""
    seq: int
    """The entry's position among its group's entries (see Balance.seq)."""
    reason: LedgerReason
    note: str | None = None
    order_id: str | None = None
    reservation_id: str | None = None
    idempotency_key: str | None = None
    lots: list[LotDraw] = Field(default_factory=list)
    """Debits, holds, expiries, refunds: the lots the tokens came from; credits: the lot made;
    releases: the lots the tokens went back to."""
    created_at: datetime


class LedgerEntry(Stored, LedgerEntryFields):
    """One token movement of one group, as the ledger keeps it."""

    @property
    def balance_before(self) -> int:
        return self.balance_after - self.tokens - self.released


class ReservationFields(BaseModel):
    """Tokens held for a long job: no longer spendable, debited or given back later."""

    user_id: str
    offer_group: str
    tokens: int
    status: ReservationStatus
    expires_at: datetime
    idempotency_key: str
    created_at: datetime


class Reservation(Stored, ReservationFields):
    """A reservation and what became of it."""
