"""The values the layers pass each other: frozen models read from the stored documents
(whose fields they declare once, for the documents in usercredits/models/ to share), the
lots inside a balance, and the domain's vocabularies. They know nothing of the database,
so the GraphQL layer can use them without touching a document."""

from usercredits.values.enums import (
    Cycle,
    LedgerReason,
    OfferKind,
    OrderStatus,
    PlanStatus,
    ReservationStatus,
)
from usercredits.values.history import StatusChange
from usercredits.values.ledger import LedgerEntry, Reservation
from usercredits.values.lots import Hold, Lot, LotDraw, LotSource
from usercredits.values.offers import CombinedItem, Offer, OfferSpec, Price
from usercredits.values.orders import Order
from usercredits.values.plans import Plan

__all__ = [
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
    "OfferSpec",
    "Order",
    "OrderStatus",
    "Plan",
    "PlanStatus",
    "Price",
    "Reservation",
    "ReservationStatus",
    "StatusChange",
]
