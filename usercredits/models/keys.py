"""Ids made of a user id and a name in that user's namespace, and the indexes of a user's
documents that are unique by their idempotency key."""

import pymongo
from pymongo import IndexModel


def user_scoped(user_id: str, name: str) -> str:
    """`name` in the user's namespace as one string: the user id's length first, so that no
    two (user, name) pairs give the same string whatever characters they contain."""
    return f"{len(user_id)}:{user_id}:{name}"


def idempotency_indexes() -> list[IndexModel]:
    """A user's documents unique by their idempotency key. The unique index is per user (a
    cluster sharded by user_id takes only unique indexes that start with it) and partial
    rather than sparse, as Beanie stores an absent key as null, which a sparse index would
    still index (and so collide on). Its lookup beside it has `_id` too: the embedded
    database never uses a partial index, and Beanie keeps one index per set of fields."""
    return [
        IndexModel(
            [("user_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
            name="user_idempotency_unique",
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
        ),
        IndexModel(
            [
                ("user_id", pymongo.ASCENDING),
                ("idempotency_key", pymongo.ASCENDING),
                ("_id", pymongo.ASCENDING),
            ],
            name="user_idempotency",
        ),
    ]
