"""The offer catalogue as the layers pass it: what can be bought, for how much, and what it
grants. Prices are integers in the currency's minor units."""

from datetime import datetime

from pydantic import BaseModel, Field

from usercredits.values.enums import Cycle, OfferKind
from usercredits.values.stored import Stored


class Price(BaseModel):
    currency: str
    minor_units: int


class CombinedItem(BaseModel):
    """One offer bundled into another, `quantity` times per bundle bought."""

    offer_id: str
    offer_group: str
    quantity: int
    cycle: Cycle | None = None
    custom_cycle_seconds: int | None = None


class OfferFields(BaseModel):
    key: str | None = None
    """A stable name chosen by the operator, by which catalogue files upsert the offer."""
    name: str
    kind: OfferKind
    offer_group: str
    token_count: int
    prices: list[Price]
    cycle: Cycle
    custom_cycle_seconds: int | None = None
    append_date: bool = False
    quantity_limit: int | None = None
    tags: list[str] = Field(default_factory=list)
    popular: bool = False
    overriding_key: str | None = None
    weight: int = 0
    unlocked_by: list[str] = Field(default_factory=list)
    combined_items: list[CombinedItem] = Field(default_factory=list)
    archived: bool = False
    created_at: datetime

    def price_in(self, currency: str) -> Price | None:
        return next((p for p in self.prices if p.currency == currency), None)


class Offer(Stored, OfferFields):
    """An offer as it stood when read."""
