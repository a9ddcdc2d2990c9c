"""Resolvers of saved cards and auto top-up rules."""

import strawberry

from usercredits.schema.context import Context
from usercredits.schema.topups import AutoTopUp, AutoTopUpInput
from usercredits.services.money import Money

Info = strawberry.Info[Context]


async def setup_payment_method(info: Info) -> str:
    """A Stripe SetupIntent's client secret, for the front end to save a card for
    off-session use."""
    user_id = info.context.principal.acting_for(None)
    return await info.context.services.top_ups.setup_payment_method(user_id=user_id)


async def set_auto_top_up(info: Info, input: AutoTopUpInput) -> AutoTopUp:
    principal = info.context.principal
    user_id = principal.acting_for(None if input.user_id is None else str(input.user_id))
    cap = input.max_amount_per_month
    rule = await info.context.services.top_ups.set_rule(
        user_id=user_id,
        offer_group=input.offer_group,
        offer_id=str(input.offer_id),
        # The contract lets these be null: null means the default.
        quantity=1 if input.quantity is None else input.quantity,
        threshold=input.threshold,
        max_per_month=5 if input.max_per_month is None else input.max_per_month,
        max_amount_per_month=None if cap is None else Money.parse(cap.amount, cap.currency),
        enabled=input.enabled is not False,
        set_by=principal.require_signed_in(),
    )
    return AutoTopUp.of(rule)
