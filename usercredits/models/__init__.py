"""Beanie documents of the credits service and their indexes. No business logic; the
values the layers pass each other are in usercredits/values/."""

from beanie import Document

from usercredits.models.api_key import ApiKey
from usercredits.models.ledger import LedgerEntryDocument, ReservationDocument, user_key
from usercredits.models.offer import OfferDocument
from usercredits.models.order import OrderDocument
from usercredits.models.payment_event import ProcessedEvent
from usercredits.models.wallet import Balance, balance_id, lot_text, pack_lots

ALL_DOCUMENTS: list[type[Document]] = [
    OfferDocument,
    OrderDocument,
    Balance,
    LedgerEntryDocument,
    ReservationDocument,
    ProcessedEvent,
    ApiKey,
]

__all__ = [
    "ALL_DOCUMENTS",
    "ApiKey",
    "Balance",
    "LedgerEntryDocument",
    "OfferDocument",
    "OrderDocument",
    "ProcessedEvent",
    "ReservationDocument",
    "balance_id",
    "lot_text",
    "pack_lots",
    "user_key",
]
