"""Resolvers of live subscriptions: the caller's (or, for staff, a user's) events as they
commit, fed by the process's change stream through the event hub."""

from collections.abc import AsyncGenerator

import strawberry

from usercredits.schema.context import Context
from usercredits.schema.fanout import once_per_event
from usercredits.schema.types import BalanceEvent, Order, Plan

Info = strawberry.Info[Context]

# Every subscriber of an event gets the same object, so that its result is executed once.
balance_event = once_per_event(BalanceEvent.of)
order = once_per_event(Order.of)
plan = once_per_event(Plan.of)


async def balance_changed(
    info: Info, user_id: strawberry.ID | None = None, offer_group: str | None = None
) -> AsyncGenerator[BalanceEvent, None]:
    """Every change of the caller's (or, for service and admin, userId's) balances, as it
    commits."""
    target = info.context.principal.acting_for(user_id)
    async for event in info.context.services.events.balance_events(target):
        if offer_group is None or event.offer_group == offer_group:
            yield balance_event(event)


async def order_updated(
    info: Info, user_id: strawberry.ID | None = None
) -> AsyncGenerator[Order, None]:
    target = info.context.principal.acting_for(user_id)
    async for event in info.context.services.events.order_events(target):
        yield order(event)


async def plan_updated(
    info: Info, user_id: strawberry.ID | None = None
) -> AsyncGenerator[Plan, None]:
    """Every change of the caller's (or, for service and admin, userId's) plans."""
    target = info.context.principal.acting_for(user_id)
    async for event in info.context.services.events.plan_events(target):
        yield plan(event)
