"""GraphQL types of saved cards and auto top-up rules."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from usercredits.schema.inputs import MoneyInput
from usercredits.services.money import Money as MoneyValue
from usercredits.services.payments import Card
from usercredits.values.topups import AutoTopUp as AutoTopUpValue

if TYPE_CHECKING:
    from usercredits.schema.types import Money

LazyMoney = Annotated["Money", strawberry.lazy("usercredits.schema.types")]
"""schema/types.py, which holds Money, imports this module."""


@strawberry.type
class PaymentMethod:
    id: strawberry.ID
    brand: str
    last4: str
    exp_month: int
    exp_year: int

    @classmethod
    def of(cls, card: Card) -> "PaymentMethod":
        return cls(
            id=strawberry.ID(card.id),
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )


@strawberry.type(
    description="Buys `offerId` off-session when the group's spendable tokens fall to "
    "`threshold` or below."
)
class AutoTopUp:
    offer_group: str
    offer_id: strawberry.ID
    quantity: int
    threshold: int
    max_per_month: int = strawberry.field(
        description="top-ups charged per calendar month (UTC), at most"
    )
    max_amount_per_month: LazyMoney | None = strawberry.field(
        description="what this rule's top-ups may charge per calendar month (UTC), at most; "
        "null: the service's cap"
    )
    enabled: bool
    set_by: str | None = strawberry.field(
        description="who set the rule: a user id, or apikey:<id> for an API key"
    )
    last_attempt_at: datetime | None
    last_order_id: strawberry.ID | None
    last_error: str | None = strawberry.field(
        description="Why the last attempt did not credit (a decline, the monthly cap); null "
        "after a success."
    )

    @classmethod
    def of(cls, rule: AutoTopUpValue) -> "AutoTopUp":
        from usercredits.schema.types import Money  # that module imports this one

        cap = rule.max_amount_per_month
        return cls(
            offer_group=rule.offer_group,
            offer_id=strawberry.ID(rule.offer_id),
            quantity=rule.quantity,
            threshold=rule.threshold,
            max_per_month=rule.max_per_month,
            max_amount_per_month=None
            if cap is None
            else Money.of(MoneyValue(cap.minor_units, cap.currency)),
            enabled=rule.enabled,
            set_by=rule.set_by,
            last_attempt_at=rule.last_attempt_at,
            last_order_id=None if rule.last_order_id is None else strawberry.ID(rule.last_order_id),
            last_error=rule.last_error,
        )


@strawberry.input
class AutoTopUpInput:
    offer_group: str
    offer_id: strawberry.ID
    threshold: int = strawberry.field(
        description="below the tokens one top-up buys, so that each lifts an empty group above it"
    )
    user_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="default: the caller; another user needs service or admin",
    )
    quantity: int | None = 1
    max_per_month: int | None = 5
    max_amount_per_month: MoneyInput | None = strawberry.field(
        default=None,
        description="a cap on what the rule's top-ups charge per calendar month, below the "
        "service's; in the service's currency",
    )
    enabled: bool | None = True
