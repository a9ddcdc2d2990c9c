"""The append-only token ledger (TokenTimetable in the original) and token reservations."""

from datetime import datetime

import pymongo
from beanie import Document
from pymongo import IndexModel

from models.enums import LedgerReason, ReservationStatus


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
    created_at: datetime

    class Settings:
        name = "ledger"
        indexes = [
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
                name="user_idempotency_unique",
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
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
