"""The documents of plans (renewing subscriptions), with their indexes."""

import pymongo
from beanie import Document
from pymongo import IndexModel

from usercredits.values.plans import PlanFields


class PlanDocument(Document, PlanFields):
    class Settings:
        name = "plans"
        indexes = [
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
                name="user_idempotency_unique",
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
            ),
            # Lookups (the embedded database uses no partial index; see models/order.py).
            IndexModel(
                [
                    ("user_id", pymongo.ASCENDING),
                    ("idempotency_key", pymongo.ASCENDING),
                    ("_id", pymongo.ASCENDING),
                ],
                name="user_idempotency",
            ),
            IndexModel([("user_id", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)], name="user"),
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("status", pymongo.ASCENDING)],
                name="user_status",
            ),
            IndexModel(
                [("subscription_id", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)],
                name="subscription",
            ),
            IndexModel(
                [("refresh_after", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)],
                name="refresh_after",
            ),
        ]
