"""Resolvers of renewing plans: subscribing, canceling, resuming, refreshing."""

import strawberry

from usercredits import values
from usercredits.schema.context import Context
from usercredits.schema.plans import SubscribeInput, SubscribePayload
from usercredits.schema.types import Plan
from usercredits.services.identity.access import ADMINS, STAFF, Role

Info = strawberry.Info[Context]


async def _owned_plan(info: Info, id: str, *, others: frozenset[Role]) -> values.Plan:
    """The plan, if the caller owns it or holds one of `others`. One the caller may not
    see is not found, as an unknown id is; one it sees but may not change is Forbidden."""
    principal = info.context.principal
    plan = await info.context.services.plans.get_plan(plan_id=id, visible_to=principal)
    principal.acting_for(plan.user_id, others=others)
    return plan


async def subscribe(info: Info, input: SubscribeInput) -> SubscribePayload:
    buyer = info.context.principal.require_signed_in()
    subscribed = await info.context.services.plans.subscribe(
        user_id=buyer,
        offer_id=str(input.offer_id),
        quantity=1 if input.quantity is None else input.quantity,
        currency=input.currency,
        idempotency_key=input.idempotency_key,
    )
    return SubscribePayload(
        plan=Plan.of(subscribed.plan), payment_client_secret=subscribed.payment_client_secret
    )


async def cancel_plan(info: Info, id: strawberry.ID, at_period_end: bool | None = True) -> Plan:
    """The owner or an admin cancels; null `atPeriodEnd` is the default (at period end)."""
    plan = await _owned_plan(info, id, others=ADMINS)
    return Plan.of(
        await info.context.services.plans.cancel(
            plan_id=plan.id, at_period_end=at_period_end is not False
        )
    )


async def resume_plan(info: Info, id: strawberry.ID) -> Plan:
    plan = await _owned_plan(info, id, others=ADMINS)
    return Plan.of(await info.context.services.plans.resume(plan_id=plan.id))


async def refresh_plan(info: Info, id: strawberry.ID) -> Plan:
    """Pull the plan's subscription and paid invoices from the payment provider and apply
    them (for a missed webhook)."""
    plan = await _owned_plan(info, id, others=STAFF)
    return Plan.of(await info.context.services.plans.refresh_plan(plan_id=plan.id))
