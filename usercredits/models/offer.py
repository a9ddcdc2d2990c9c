"""The document of the offer catalogue, with its indexes."""

import pymongo
from beanie import Document
from pymongo import IndexModel

from usercredits.values.offers import OfferFields


class OfferDocument(Document, OfferFields):
    class Settings:
        name = "offers"
        indexes = [
            IndexModel(
                [("archived", pymongo.ASCENDING), ("offer_group", pymongo.ASCENDING)],
                name="archived_group",
            ),
            IndexModel([("tags", pymongo.ASCENDING)], name="tags"),
            IndexModel(
                [("key", pymongo.ASCENDING)],
                name="key_unique",
                unique=True,
                partialFilterExpression={"key": {"$type": "string"}},
            ),
        ]
