"""Lots: the tokens of one credit, each with its own period, and what movements take from
them."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

MAX_TOKENS = 2**31 - 1
"""The most a balance may hold: GraphQL's Int, in which balances are reported."""


class LotSource(StrEnum):
    ORDER = "order"
    GRANT = "grant"


class Lot(BaseModel):
    """The tokens of one credit, valid for their own period. Frozen: a movement makes a new
    lot for each one it changes (`model_copy`), so an unchanged lot is the same object from
    one write to the next and its stored text can be reused (see `models.wallet.pack_lots`)."""

    model_config = ConfigDict(frozen=True)

    id: str
    source: LotSource
    order_id: str | None = None
    tokens: int
    """Credited."""
    remaining: int
    """Spendable: not yet spent, held, expired or refunded."""
    held: int = 0
    """Held by reservations, given back to this lot or spent from it when they settle."""
    starts: datetime
    expires: datetime | None = None
    priority: int = 50
    note: str | None = None
    created_at: datetime


class LotDraw(BaseModel):
    """Tokens one movement took from (or gave to) one lot."""

    lot_id: str
    tokens: int


class Hold(BaseModel):
    """A held reservation: how many tokens, from which lots, until when."""

    id: str
    tokens: int
    draws: list[LotDraw]
    expires_at: datetime
    idempotency_key: str
