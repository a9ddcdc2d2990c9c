"""Resolvers of orders: buying, reading, refreshing and canceling."""

import strawberry

from usercredits import values
from usercredits.schema.context import Context
from usercredits.schema.inputs import CreateOrderInput
from usercredits.schema.types import CreateOrderPayload, Order, OrderConnection
from usercredits.services.errors import NotFound
from usercredits.services.identity.access import ADMINS, STAFF, Role
from usercredits.services.orders.buying import ORDERS_PAGE
from usercredits.values import OrderStatus

Info = strawberry.Info[Context]


async def _owned_order(info: Info, id: str, *, others: frozenset[Role]) -> values.Order:
    """The order, if the caller owns it or holds one of `others`. One the caller may not
    see is not found, as an unknown id is; one it sees but may not change is Forbidden."""
    principal = info.context.principal
    order = await info.context.services.orders.get_order(order_id=id, visible_to=principal)
    principal.acting_for(order.user_id, others=others)
    return order


async def order(info: Info, id: strawberry.ID) -> Order | None:
    info.context.principal.require_signed_in()
    try:
        return Order.of(await _owned_order(info, id, others=STAFF))
    except NotFound:
        return None


async def orders(
    info: Info,
    user_id: strawberry.ID | None = None,
    status: OrderStatus | None = None,
    first: int | None = ORDERS_PAGE,
    after: str | None = None,
) -> OrderConnection:
    target = info.context.principal.acting_for(user_id)
    page = await info.context.services.orders.list_orders(
        user_id=target, status=status, first=ORDERS_PAGE if first is None else first, after=after
    )
    return OrderConnection.of(page.orders, page.has_next_page)


async def create_order(info: Info, input: CreateOrderInput) -> CreateOrderPayload:
    buyer = info.context.principal.require_signed_in()
    created = await info.context.services.orders.create_order(
        user_id=buyer,
        offer_id=input.offer_id,
        quantity=1 if input.quantity is None else input.quantity,
        currency=input.currency,
        idempotency_key=input.idempotency_key,
    )
    return CreateOrderPayload(
        order=Order.of(created.order), payment_client_secret=created.payment_client_secret
    )


async def refresh_order(info: Info, id: strawberry.ID) -> Order:
    """Pull the payment's state from the payment provider and apply it (for a missed
    webhook)."""
    await _owned_order(info, id, others=STAFF)
    return Order.of(await info.context.services.orders.refresh_order(order_id=id))


async def cancel_order(info: Info, id: strawberry.ID) -> Order:
    await _owned_order(info, id, others=ADMINS)
    return Order.of(await info.context.services.orders.cancel_order(order_id=id))
