"""The offer catalogue as the layers pass it: what can be bought, for how much, and what it
grants. Prices are integers in the currency's minor units.

One model says what an offer is. `OfferTerms` are its fields as an offer stores them;
`OfferSpec` reads them from what an operator states, in camelCase (the GraphQL input,
catalogue files) or by field name (Python callers), and checks the rules that need nothing
but the offer itself. The stored document (models/offer.py) and the `Offer` value add the
key, the archived flag and the creation time. Rules that need the database (bundled
offers exist, their groups) or the settings (name lengths) are the offers service's.
"""

from datetime import datetime

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from usercredits.values.enums import Cycle, OfferKind
from usercredits.values.lots import MAX_TOKENS
from usercredits.values.numbers import is_whole
from usercredits.values.stored import Stored

MAX_MINOR_UNITS = 2**31 - 1
"""The most a price, or an order's total, may be in minor units: GraphQL's Int, in which
they are reported (21,474,836.47 USD)."""


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


class Price(Stated):
    currency: str
    minor_units: int


class CombinedItem(Stated):
    """One offer bundled into another, `quantity` times per bundle bought."""

    offer_id: str
    offer_group: str = ""
    """The bundled offer's group, which the offers service fills in from that offer."""
    quantity: int
    cycle: Cycle | None = None
    custom_cycle_seconds: int | None = None

    _names = field_validator("cycle", mode="before")(_by_name)


class OfferTerms(BaseModel):
    """An offer's terms, as an offer stores them. Read as they were stored: the rules
    they keep are checked when an operator states them (`OfferSpec`)."""

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

    _names = field_validator("kind", "cycle", mode="before")(_by_name)

    def price_in(self, currency: str) -> Price | None:
        return next((p for p in self.prices if p.currency == currency), None)


class OfferSpec(Stated, OfferTerms):
    """Everything an operator states about an offer, and the rules it must keep. Only the
    top level here reads camelCase: the document (Beanie) keeps its own aliases (`_id`)."""

    @field_validator(
        "token_count", "custom_cycle_seconds", "quantity_limit", "weight", mode="before"
    )
    @classmethod
    def _whole(cls, value: object) -> object:
        """A whole number, not a float, a bool or a numeric string."""
        if value is not None and not is_whole(value):
            raise ValueError(f"must be a whole number, got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("an offer needs a name")
        return name.strip()

    @field_validator("token_count")
    @classmethod
    def _bounded(cls, tokens: int) -> int:
        if not 0 <= tokens <= MAX_TOKENS:
            raise ValueError(f"must be from 0 to {MAX_TOKENS}, got {tokens}")
        return tokens

    @field_validator("quantity_limit")
    @classmethod
    def _limit(cls, limit: int | None) -> int | None:
        if limit is not None and limit < 1:
            raise ValueError(f"must be >= 1, got {limit}")
        return limit

    @field_validator("prices")
    @classmethod
    def _priced(cls, prices: list[Price]) -> list[Price]:
        if not prices:
            raise ValueError("an offer needs at least one price")
        currencies = [p.currency for p in prices]
        if len(set(currencies)) != len(currencies):
            raise ValueError(f"an offer has one price per currency, got {currencies}")
        for price in prices:
            if price.minor_units < 0:
                raise ValueError(f"the {price.currency} price is negative")
            if price.minor_units > MAX_MINOR_UNITS:
                raise ValueError(
                    f"the {price.currency} price is {price.minor_units} minor units; at most "
                    f"{MAX_MINOR_UNITS} may be asked"
                )
        return prices

    @field_validator("combined_items")
    @classmethod
    def _items(cls, items: list[CombinedItem]) -> list[CombinedItem]:
        checked = []
        for item in items:
            if item.quantity < 1:
                raise ValueError(f"combined item {item.offer_id}: quantity must be >= 1")
            seconds = _cycle_seconds(item.cycle, item.custom_cycle_seconds)
            checked.append(item.model_copy(update={"custom_cycle_seconds": seconds}))
        return checked

    @field_validator("tags", "unlocked_by")
    @classmethod
    def _as_set(cls, names: list[str]) -> list[str]:
        """Sets, kept sorted so that the same offer is always stored the same way."""
        return sorted(set(names))

    @field_validator("overriding_key")
    @classmethod
    def _no_empty_key(cls, key: str | None) -> str | None:
        return key or None

    @model_validator(mode="after")
    def _cycle(self) -> "OfferSpec":
        self.custom_cycle_seconds = _cycle_seconds(self.cycle, self.custom_cycle_seconds)
        return self


def _cycle_seconds(cycle: Cycle | None, seconds: int | None) -> int | None:
    """A CUSTOM cycle's length, which it needs; any other cycle has none (what was given
    is dropped)."""
    if cycle is not Cycle.CUSTOM:
        return None
    if seconds is None or seconds <= 0:
        raise ValueError("a CUSTOM cycle needs customCycleSeconds > 0")
    return seconds


class OfferFields(OfferTerms):
    key: str | None = None
    """A stable name chosen by the operator, by which catalogue files upsert the offer."""
    archived: bool = False
    created_at: datetime


class Offer(Stored, OfferFields):
    """An offer as it stood when read."""
