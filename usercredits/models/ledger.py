"""The append-only token ledger (TokenTimetable in the original) and token reservations."""

from datetime import datetime

import pymongo
from beanie import Document
from pydantic import Field
from pymongo import IndexModel

from usercredits.models.enums import LedgerReason, ReservationStatus
from usercredits.models.keys import user_scoped
from usercredits.models.wallet import LotDraw


def user_key(user_id: str, idempotency_key: str) -> str:
    """What the ledger's unique index on keyed entries holds: one value per user and key."""
    return user_scoped(user_id, idempotency_key)


class LedgerEntry(Document):
    user_id: str
    offer_group: str
    tokens: int
    balance_after: int
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

    class Settings:
        name = "ledger"
        indexes = [
            # A keyed entry also stores `user_key(user_id, idempotency_key)`, an unkeyed one
            # has no such field. A batch of movements looks its keys up with one `$in` of
            # those values, which the embedded database answers from this index; it scans
            # for a partial index or for `$in`s over two fields (measured).
            IndexModel(
                [("user_key", pymongo.ASCENDING)], name="user_key_unique", unique=True, sparse=True
            ),
            IndexModel(
                [
                    ("user_id", pymongo.ASCENDING),
                    ("offer_group", pymongo.ASCENDING),
                    ("_id", pymongo.DESCENDING),
                ],
                name="user_group_newest",
            ),
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("_id", pymongo.DESCENDING)], name="user_newest"
            ),
            IndexModel(
                [
                    ("user_id", pymongo.ASCENDING),
                    ("offer_group", pymongo.ASCENDING),
                    ("seq", pymongo.ASCENDING),
                ],
                name="user_group_seq_unique",
                unique=True,
            ),
            IndexModel([("reservation_id", pymongo.ASCENDING)], name="reservation", sparse=True),
        ]


class Reservation(Document):
    """Tokens held for a long job: no longer spendable, debited or given back later."""

    user_id: str
    offer_group: str
    tokens: int
    status: ReservationStatus
    expires_at: datetime
    idempotency_key: str
    created_at: datetime

    class Settings:
        name = "reservations"
        indexes = [
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
                name="user_idempotency_unique",
                unique=True,
            ),
            IndexModel(
                [("status", pymongo.ASCENDING), ("expires_at", pymongo.ASCENDING)],
                name="status_expires",
            ),
        ]
