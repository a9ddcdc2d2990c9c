"""Beanie documents of the credits service and their indexes. No business logic."""

from beanie import Document

from models.api_key import ApiKey
from models.enums import Cycle, LedgerReason, OfferKind, OrderStatus, ReservationStatus
from models.ledger import LedgerEntry, Reservation, user_key
from models.offer import CombinedItem, Offer, Price
from models.order import Order, OrderEvent
from models.payment_event import ProcessedEvent
from models.wallet import (
    Balance,
    Hold,
    Lot,
    LotDraw,
    LotSource,
    balance_id,
    lot_text,
    pack_lots,
)

ALL_DOCUMENTS: list[type[Document]] = [
    Offer,
    Order,
    Balance,
    LedgerEntry,
    Reservation,
    ProcessedEvent,
    ApiKey,
]

__all__ = [
    "ALL_DOCUMENTS",
    "ApiKey",
    "Balance",
    "CombinedItem",
    "Cycle",
    "Hold",
    "LedgerEntry",
    "LedgerReason",
    "Lot",
    "LotDraw",
    "LotSource",
    "Offer",
    "OfferKind",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "Price",
    "ProcessedEvent",
    "Reservation",
    "ReservationStatus",
    "balance_id",
    "lot_text",
    "pack_lots",
    "user_key",
]
