"""The documents of orders, with their indexes."""

import pymongo
from beanie import Document
from pymongo import IndexModel

from usercredits.models.keys import idempotency_indexes
from usercredits.values.orders import OrderFields


class OrderDocument(Document, OrderFields):
    class Settings:
        name = "orders"
        indexes = [
            *idempotency_indexes(),
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("status", pymongo.ASCENDING)],
                name="user_status",
            ),
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("offer_group", pymongo.ASCENDING)],
                name="user_group",
            ),
            # Uniqueness: per user (a cluster sharded by user_id takes only unique indexes
            # that start with it), and partial rather than sparse, as Beanie stores an absent
            # value as null, which a sparse index would still index (and so collide on).
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("payment_intent_id", pymongo.ASCENDING)],
                name="user_payment_intent_unique",
                unique=True,
                partialFilterExpression={"payment_intent_id": {"$type": "string"}},
            ),
            # Lookups: the embedded database never uses a partial index, and scans for a
            # filter on any field its index lacks (see tests/test_query_plans.py). Each has
            # other fields than the unique one it stands beside: Beanie keeps one index per
            # set of fields.
            IndexModel(
                [("payment_intent_id", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)],
                name="payment_intent",
            ),
            IndexModel([("parent_id", pymongo.ASCENDING)], name="parent"),
            IndexModel(
                [("plan_id", pymongo.ASCENDING), ("starts", pymongo.ASCENDING)], name="plan_starts"
            ),
            IndexModel(
                [
                    ("user_id", pymongo.ASCENDING),
                    ("offer_id", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                    ("expires", pymongo.ASCENDING),
                ],
                name="user_offer_status_expires",
            ),
            IndexModel(
                [("status", pymongo.ASCENDING), ("expires", pymongo.ASCENDING)],
                name="status_expires",
            ),
            IndexModel(
                [("status", pymongo.ASCENDING), ("created_at", pymongo.ASCENDING)],
                name="status_created",
            ),
        ]
