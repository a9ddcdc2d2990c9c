"""The collections the services read and write, one typed handle each, built from a database
and named by each document's `Settings.name`. server/ builds them and hands each service
the ones it works on, so no service reaches Beanie's process-wide binding; the documents
stay the source of the indexes (server/database.py) and of validation and encoding."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beanie import Document
from beanie.odm.utils.dump import get_dict
from beanie.odm.utils.encoder import Encoder
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from usercredits.models.api_key import ApiKey
from usercredits.models.ledger import LedgerEntryDocument, ReservationDocument
from usercredits.models.offer import OfferDocument
from usercredits.models.order import OrderDocument
from usercredits.models.payment_event import ProcessedEvent
from usercredits.models.plan import PlanDocument
from usercredits.models.topup import (
    AutoTopUpDocument,
    PaymentCustomerDocument,
    TopUpAttemptDocument,
)
from usercredits.models.wallet import Balance
from usercredits.models.webhook import (
    AlertRuleDocument,
    AlertStateDocument,
    StreamPosition,
    WebhookDeliveryDocument,
    WebhookEndpointDocument,
)

Raw = dict[str, Any]
"""A document as stored."""

Collection = AsyncCollection[Raw]


@dataclass(frozen=True, slots=True)
class Collections:
    offers: Collection
    orders: Collection
    balances: Collection
    ledger: Collection
    reservations: Collection
    payment_events: Collection
    api_keys: Collection
    webhook_endpoints: Collection
    webhook_deliveries: Collection
    alert_rules: Collection
    alert_states: Collection
    stream_positions: Collection
    payment_customers: Collection
    auto_top_ups: Collection
    top_up_attempts: Collection
    plans: Collection

    @classmethod
    def of(cls, database: AsyncDatabase[Any]) -> "Collections":
        """The collections of `database`, each under its document's name."""
        return cls(
            offers=database[OfferDocument.Settings.name],
            orders=database[OrderDocument.Settings.name],
            balances=database[Balance.Settings.name],
            ledger=database[LedgerEntryDocument.Settings.name],
            reservations=database[ReservationDocument.Settings.name],
            payment_events=database[ProcessedEvent.Settings.name],
            api_keys=database[ApiKey.Settings.name],
            webhook_endpoints=database[WebhookEndpointDocument.Settings.name],
            webhook_deliveries=database[WebhookDeliveryDocument.Settings.name],
            alert_rules=database[AlertRuleDocument.Settings.name],
            alert_states=database[AlertStateDocument.Settings.name],
            stream_positions=database[StreamPosition.Settings.name],
            payment_customers=database[PaymentCustomerDocument.Settings.name],
            auto_top_ups=database[AutoTopUpDocument.Settings.name],
            top_up_attempts=database[TopUpAttemptDocument.Settings.name],
            plans=database[PlanDocument.Settings.name],
        )


def stored(document: Document) -> Raw:
    """`document` as Beanie's `insert` writes it: its encoding (enums as their values),
    without an `_id` while it has none."""
    raw: Raw = get_dict(document, to_db=True, keep_nulls=document.get_settings().keep_nulls)
    return raw


async def insert(collection: Collection, document: Document) -> None:
    """Inserts `document` into `collection` as Beanie's `insert` would, giving it the id
    the insert made when it had none. A duplicate key raises DuplicateKeyError."""
    result = await collection.insert_one(stored(document))
    document.id = result.inserted_id


def encoded(fields: Mapping[str, Any]) -> Raw:
    """Field values as Beanie stores them (models as subdocuments, enums as their values)."""
    raw: Raw = Encoder(to_db=True).encode(fields)
    return raw


async def set_fields(
    collection: Collection, document_id: Any, fields: Mapping[str, Any]
) -> Raw | None:
    """Sets `fields` on the document `document_id` as Beanie's `Document.set` does (one
    find-and-modify); the document after the write, None if there is none. A value another
    document holds under a unique index raises DuplicateKeyError."""
    return await collection.find_one_and_update(
        {"_id": document_id}, {"$set": encoded(fields)}, return_document=ReturnDocument.AFTER
    )


async def save(collection: Collection, document: Document) -> None:
    """Writes `document` whole under its id, inserting it if it is not there, as Beanie's
    `save` does."""
    await collection.update_one({"_id": document.id}, {"$set": stored(document)}, upsert=True)
