"""The SANDBOX-only mutation that completes a sandbox payment, so a person can walk the
purchase flow locally without Stripe. The schema has it only when the sandbox is the
payment provider."""

import strawberry

from usercredits.schema.context import Context
from usercredits.schema.types import Order
from usercredits.services.identity.access import ADMINS

Info = strawberry.Info[Context]


async def complete_sandbox_payment(
    info: Info, order_id: strawberry.ID, succeed: bool = True
) -> Order:
    """SANDBOX ONLY: make the order's sandbox payment succeed (or fail) and apply it."""
    services = info.context.services
    principal = info.context.principal
    order = await services.orders.get_order(order_id=order_id, visible_to=principal)
    principal.acting_for(order.user_id, others=ADMINS)
    return Order.of(await services.orders.settle_sandbox_payment(order=order, succeed=succeed))
