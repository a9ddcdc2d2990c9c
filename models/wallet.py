"""A user's wallet: one balance document per (user, offer group).

One document per group, not one per user, so that a debit is a guarded `$inc` on a small
document and the expiry sweep can use an index on `expires`.
"""

from datetime import datetime

import pymongo
from beanie import Document
from pymongo import IndexModel


class Balance(Document):
    user_id: str
    offer_group: str
    tokens: int = 0
    reserved: int = 0
    seq: int = 0
    """Counts the group's ledger entries: the next entry's `seq` is this plus one."""
    starts: datetime | None = None
    expires: datetime | None = None
    updated_at: datetime

    class Settings:
        name = "wallet_balances"
        indexes = [
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("offer_group", pymongo.ASCENDING)],
                name="user_group_unique",
                unique=True,
            ),
            IndexModel([("expires", pymongo.ASCENDING)], name="expires"),
        ]
