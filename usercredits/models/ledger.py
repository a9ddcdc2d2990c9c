"""The documents of the append-only token ledger and of reservations, with their indexes."""

import pymongo
from beanie import Document
from pymongo import IndexModel

from usercredits.models.keys import user_scoped
from usercredits.values.ledger import LedgerEntryFields, ReservationFields


def user_key(user_id: str, idempotency_key: str) -> str:
    """What the ledger's unique index on keyed entries holds: one value per user and key."""
    return user_scoped(user_id, idempotency_key)


class LedgerEntryDocument(Document, LedgerEntryFields):
    class Settings:
        name = "ledger"
        indexes = [
            # A keyed entry also stores `user_key(user_id, idempotency_key)`, an unkeyed one
            # has no such field. Uniqueness: per user (a cluster sharded by user_id takes
            # only unique indexes that start with it), partial, so unkeyed entries are left
            # out. Lookups: a batch of movements looks its keys up with one `$in` of those
            # values, which the embedded database answers from `user_key_lookup`; it never
            # uses a partial index, and scans for `$in`s over two fields (measured). Sparse,
            # as unkeyed entries need no place in it (one over every entry made inserts and
            # lookups slower, measured); descending, so that its key differs from the unique
            # (user_key) index of earlier versions, which it replaces without a clash.
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("user_key", pymongo.ASCENDING)],
                name="user_keyed_unique",
                unique=True,
                partialFilterExpression={"user_key": {"$type": "string"}},
            ),
            IndexModel([("user_key", pymongo.DESCENDING)], name="user_key_lookup", sparse=True),
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


class ReservationDocument(Document, ReservationFields):
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
