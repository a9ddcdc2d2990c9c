"""The documents of plans (renewing subscriptions), with their indexes."""

import pymongo
from beanie import Document
from pymongo import IndexModel

from usercredits.models.keys import idempotency_indexes
from usercredits.values.plans import PlanFields


class PlanDocument(Document, PlanFields):
    class Settings:
        name = "plans"
        indexes = [
            *idempotency_indexes(),
            IndexModel([("user_id", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)], name="user"),
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("status", pymongo.ASCENDING)],
                name="user_status",
            ),
            IndexModel(
                [("refresh_after", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)],
                name="refresh_after",
            ),
        ]
