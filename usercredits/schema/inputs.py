"""GraphQL input types of the contract, each turned into the service's plain values here."""

from datetime import datetime

import strawberry

from usercredits.services.catalogue.offers import offer_spec, price
from usercredits.services.wallets.debits import DEFAULT_TTL_SECONDS
from usercredits.values import Cycle, OfferKind, OfferSpec


@strawberry.input
class MoneyInput:
    amount: str
    currency: str


@strawberry.input
class CombinedItemInput:
    offer_id: strawberry.ID
    quantity: int
    cycle: Cycle | None = None
    custom_cycle_seconds: int | None = None


@strawberry.input
class OfferInput:
    id: strawberry.ID | None = strawberry.field(
        default=None, description="absent: create (or, with a key, upsert by key); present: update"
    )
    name: str
    kind: OfferKind
    offer_group: str
    token_count: int
    prices: list[MoneyInput]
    cycle: Cycle
    custom_cycle_seconds: int | None = None
    append_date: bool | None = False
    quantity_limit: int | None = None
    tags: list[str] | None = strawberry.field(default_factory=list)
    popular: bool | None = False
    overriding_key: str | None = None
    weight: int | None = 0
    unlocked_by: list[str] | None = strawberry.field(default_factory=list)
    combined_items: list[CombinedItemInput] | None = strawberry.field(default_factory=list)
    key: str | None = strawberry.field(
        default=None,
        description="A stable name of the offer, unique among offers (catalogue files use "
        "it too). Without an id: the offer that has this key is updated, or one is created "
        "with it, so the same upsert twice leaves one offer. With an id: that offer takes "
        "this key. Absent: an update keeps the offer's key.",
    )

    def to_spec(self) -> OfferSpec:
        """The offer stated; a field left null takes its default."""
        stated = strawberry.asdict(self)
        del stated["id"], stated["key"]
        stated["prices"] = [price(p.amount, p.currency) for p in self.prices]
        return offer_spec({name: value for name, value in stated.items() if value is not None})


@strawberry.input
class CreateOrderInput:
    offer_id: strawberry.ID
    quantity: int | None = 1
    currency: str | None = None
    idempotency_key: str | None = None


@strawberry.input
class ConsumeTokensInput:
    user_id: strawberry.ID | None = None
    offer_group: str
    tokens: int
    idempotency_key: str
    reason: str | None = None


@strawberry.input
class ReserveTokensInput:
    user_id: strawberry.ID | None = None
    offer_group: str
    tokens: int
    ttl_seconds: int | None = DEFAULT_TTL_SECONDS
    idempotency_key: str


@strawberry.input
class GrantTokensInput:
    user_id: strawberry.ID
    offer_group: str
    tokens: int
    expires: datetime | None = None
    idempotency_key: str
    reason: str | None = None
    priority: int | None = strawberry.field(
        default=50, description="0..100, lower is spent first; orders are 50."
    )
