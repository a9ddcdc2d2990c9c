"""The offer catalogue as the layers pass it: what can be bought, for how much, and what it
grants. Prices are integers in the currency's minor units.

One model says what an offer is. `OfferTerms` holds what an operator states and checks the
rules that need nothing but the offer itself; `OfferSpec` reads them from camelCase (the
GraphQL input, catalogue files) or from their own names (Python callers). The stored
document (models/offer.py) and the `Offer` value add the key, the archived flag and the
creation time. Rules that need the database (bundled offers exist,
their groups) or the settings (name lengths) are the offers service's.
"""

from datetime import datetime
from typing import Annotated

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from usercredits.values.enums import Cycle, OfferKind
from usercredits.values.lots import MAX_TOKENS
from usercredits.values.stored import Stored


class Stated(BaseModel):
    """Read from camelCase or from the fields' own names; stored and dumped under the
    fields' own names."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel),
        validate_by_alias=True,
        validate_by_name=True,
    )


def _by_name(value: object) -> object:
    """GraphQL and catalogue files name a vocabulary's members upper-case (MONTHLY),
    documents by their value (monthly)."""
    return value.lower() if isinstance(value, str) else value


Positive = Annotated[int, Field(strict=True, ge=1)]
"""A whole number of at least 1: not a float, not a bool, not a numeric string."""


def _cycle_seconds(value: int | None, info: ValidationInfo) -> int | None:
    """A CUSTOM cycle's length; any other cycle has none (what was given is dropped)."""
    if info.data.get("cycle") is not Cycle.CUSTOM:
        return None
    if value is None:
        raise ValueError("a CUSTOM cycle needs customCycleSeconds > 0")
    return value


class Price(Stated):
    currency: str
    minor_units: Annotated[int, Field(strict=True, ge=0)]


class CombinedItem(Stated):
    """One offer bundled into another, `quantity` times per bundle bought."""

    offer_id: str
    offer_group: str = ""
    """The bundled offer's group, which the offers service fills in from that offer."""
    quantity: Positive
    cycle: Cycle | None = None
    custom_cycle_seconds: Positive | None = Field(default=None, validate_default=True)

    _names = field_validator("cycle", mode="before")(_by_name)
    _custom = field_validator("custom_cycle_seconds")(_cycle_seconds)


class OfferTerms(BaseModel):
    """An offer's terms and the rules they keep; the stored offer's fields."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    kind: OfferKind
    offer_group: str
    token_count: Annotated[int, Field(strict=True, ge=0, le=MAX_TOKENS)]
    prices: list[Price]
    cycle: Cycle
    custom_cycle_seconds: Positive | None = Field(default=None, validate_default=True)
    append_date: bool = False
    quantity_limit: Positive | None = None
    tags: list[str] = Field(default_factory=list)
    popular: bool = False
    overriding_key: str | None = None
    weight: Annotated[int, Field(strict=True)] = 0
    unlocked_by: list[str] = Field(default_factory=list)
    combined_items: list[CombinedItem] = Field(default_factory=list)

    _names = field_validator("kind", "cycle", mode="before")(_by_name)
    _custom = field_validator("custom_cycle_seconds")(_cycle_seconds)

    @field_validator("prices")
    @classmethod
    def _one_per_currency(cls, prices: list[Price]) -> list[Price]:
        if not prices:
            raise ValueError("an offer needs at least one price")
        currencies = [p.currency for p in prices]
        if len(set(currencies)) != len(currencies):
            raise ValueError(f"an offer has one price per currency, got {currencies}")
        return prices

    @field_validator("tags", "unlocked_by")
    @classmethod
    def _as_set(cls, names: list[str]) -> list[str]:
        """Sets, kept sorted so that the same offer is always stored the same way."""
        return sorted(set(names))

    @field_validator("overriding_key")
    @classmethod
    def _no_empty_key(cls, key: str | None) -> str | None:
        return key or None

    def price_in(self, currency: str) -> Price | None:
        return next((p for p in self.prices if p.currency == currency), None)


class OfferSpec(Stated, OfferTerms):
    """Everything an operator states about an offer, as the GraphQL input and catalogue
    files write it (camelCase) or by the fields' own names. Only the terms' top level
    takes camelCase from here: the document (Beanie) keeps its own aliases (`_id`)."""


class OfferFields(OfferTerms):
    key: str | None = None
    """A stable name chosen by the operator, by which catalogue files upsert the offer."""
    archived: bool = False
    created_at: datetime


class Offer(Stored, OfferFields):
    """An offer as it stood when read."""
