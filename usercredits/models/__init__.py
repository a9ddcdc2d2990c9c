"""Beanie documents of the credits service and their indexes. No business logic."""

from beanie import Document

from usercredits.models.api_key import ApiKey
from usercredits.models.enums import Cycle, LedgerReason, OfferKind, OrderStatus, ReservationStatus
from usercredits.models.ledger import LedgerEntry, Reservation, user_key
from usercredits.models.offer import CombinedItem, Offer, Price
from usercredits.models.order import Order, OrderEvent
from usercredits.models.payment_event import ProcessedEvent
from usercredits.models.wallet import (
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
