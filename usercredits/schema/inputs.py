"""GraphQL input types of the contract, each turned into the service's plain values here."""

from datetime import datetime

import strawberry

from usercredits.services.debits import DEFAULT_TTL_SECONDS
from usercredits.services.money import Money
from usercredits.services.offers import ItemSpec, OfferSpec
from usercredits.values import Cycle, OfferKind


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
        default=None, description="absent: create; present: update"
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

    def to_spec(self) -> OfferSpec:
        return OfferSpec(
            name=self.name,
            kind=self.kind,
            offer_group=self.offer_group,
            token_count=self.token_count,
            prices=[Money.parse(p.amount, p.currency) for p in self.prices],
            cycle=self.cycle,
            custom_cycle_seconds=self.custom_cycle_seconds,
            append_date=bool(self.append_date),
            quantity_limit=self.quantity_limit,
            tags=list(self.tags or []),
            popular=bool(self.popular),
            overriding_key=self.overriding_key,
            weight=self.weight or 0,
            unlocked_by=list(self.unlocked_by or []),
            combined_items=[
                ItemSpec(
                    offer_id=str(i.offer_id),
                    quantity=i.quantity,
                    cycle=i.cycle,
                    custom_cycle_seconds=i.custom_cycle_seconds,
                )
                for i in self.combined_items or []
            ],
        )


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
