"""GraphQL types of subscribing to a renewing plan (the Plan type is beside Wallet)."""

import strawberry

from usercredits.schema.types import Plan


@strawberry.type
class SubscribePayload:
    plan: Plan
    payment_client_secret: str | None = strawberry.field(
        description="For the front end to confirm the first payment (Stripe.js); null when "
        "none is due now."
    )


@strawberry.input
class SubscribeInput:
    offer_id: strawberry.ID = strawberry.field(
        description="a SUBSCRIPTION offer with a cycle other than ONCE"
    )
    quantity: int | None = 1
    currency: str | None = None
    idempotency_key: str | None = None
