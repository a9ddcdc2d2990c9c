"""Orders as the layers pass them: one purchase of an offer by a user, with its payment and
status history."""

from datetime import datetime

from pydantic import BaseModel, Field

from usercredits.values.enums import OrderStatus
from usercredits.values.history import StatusChange
from usercredits.values.stored import Stored

TOP_UP_KEY = "top-up:"
"""The idempotency key of an order made by an auto top-up starts with this (the rest is the
attempt's id)."""
INVOICE_KEY = "invoice:"
"""The idempotency key of a plan's order for one paid invoice: this and the invoice's id."""
BUNDLE_KEY = "bundle:"
"""The idempotency key of a bundle's child order: this, the parent's id and the item."""
RESERVED_KEYS = (TOP_UP_KEY, INVOICE_KEY, BUNDLE_KEY)
"""Prefixes of the keys the service gives the orders it makes itself; a buyer's key may not
start with one, or it could take the place of such an order."""


def is_service_key(idempotency_key: str | None) -> bool:
    """Whether the order was made by the service itself (a top-up, a paid invoice, a
    bundle's item), not by a buyer."""
    return idempotency_key is not None and idempotency_key.startswith(RESERVED_KEYS)


def is_top_up_key(idempotency_key: str | None) -> bool:
    """Whether an order's idempotency key marks it as an auto top-up's."""
    return idempotency_key is not None and idempotency_key.startswith(TOP_UP_KEY)


class Purchase(BaseModel):
    """What a user bought: an order's, or a plan's for each period."""

    user_id: str
    offer_id: str
    offer_group: str
    quantity: int
    token_count: int
    currency: str
    total_minor_units: int


class OrderFields(Purchase):
    status: OrderStatus
    starts: datetime | None = None
    expires: datetime | None = None
    created_at: datetime
    updated_at: datetime
    history: list[StatusChange[OrderStatus]] = Field(default_factory=list)
    payment_intent_id: str | None = None
    parent_id: str | None = None
    plan_id: str | None = None
    """The plan whose paid period this order is."""
    idempotency_key: str | None = None


class Order(Stored, OrderFields):
    """An order as it stood when read."""

    @property
    def top_up(self) -> bool:
        """Made by an auto top-up rule, off-session."""
        return is_top_up_key(self.idempotency_key)
