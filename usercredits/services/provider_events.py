"""Applying a payment provider's verified events to orders and plans. No HTTP here: the
server verifies and parses the delivery, this decides what it changes.

Each event id is applied once: a replayed or duplicated delivery is acknowledged and
ignored. A payment's event settles the order its metadata names (crediting it once) even
when the answer that would have recorded the payment on the order was lost, and an
invoice's paid period is credited to the plan its metadata names before the provider is
asked anything more. Two copies arriving at the same moment may both be applied, which is
harmless, as every order and plan change is guarded. Events for payments no order knows,
and for subscriptions no plan has, are logged and acknowledged, so the provider stops
retrying them. An event that needs the provider (a plan's subscription, or which invoice a
refunded payment paid) while it cannot be reached is not recorded: the provider sends it
again.
"""

import logging
from contextlib import suppress

from pymongo.errors import DuplicateKeyError

from usercredits.models import ProcessedEvent
from usercredits.services.clock import Clock
from usercredits.services.errors import DomainError, PaymentFailed
from usercredits.services.orders import Orders
from usercredits.services.payments import PaymentState, WebhookEvent
from usercredits.services.plans.renewals import Plans

log = logging.getLogger(__name__)


async def handle_provider_event(
    *, orders: Orders, plans: Plans, event: WebhookEvent, clock: Clock
) -> str:
    """Applies `event` and returns what came of it: the order's or plan's status,
    `duplicate`, `ignored` (a type we do not act on), `unknown payment` or `unknown
    subscription`. PaymentFailed (the provider could not be asked what the event needs)
    records nothing, so that the provider delivers the event again."""
    if await orders.event_processed(event_id=event.id):
        return "duplicate"
    try:
        outcome = await _apply(orders, plans, event)
    except PaymentFailed:
        raise
    except DomainError as exc:
        # A rule refused it (a balance would overflow): retrying the delivery cannot help;
        # the order or plan stays as it was, and the sweep tries again.
        log.error("payment event not applied", extra={"event_id": event.id, "error": exc.message})
        outcome = f"not applied: {exc.code}"
    with suppress(DuplicateKeyError):
        await orders.record_event(
            ProcessedEvent(
                id=event.id,
                type=event.type,
                payment_id=event.payment_id,
                outcome=outcome,
                processed_at=clock.now(),
            )
        )
    return outcome


async def _apply(orders: Orders, plans: Plans, event: WebhookEvent) -> str:
    if event.subscription_id is not None:
        return await plans.apply_event(event)
    if event.payment_id is None or event.state is None:
        return "ignored"
    order = await orders.find_by_payment(payment_id=event.payment_id)
    if order is None and event.order_id is not None and event.user_id is not None:
        # The payment's metadata names our order: the signed event is the provider's word,
        # whatever answer (the charge's, the payment's creation) was lost on the way.
        order = await orders.adopt_payment(
            order_id=event.order_id, user_id=event.user_id, payment_id=event.payment_id
        )
    if order is None and event.state is PaymentState.REFUNDED:  # perhaps a plan's period
        order = await orders.find_by_invoice_payment(payment_id=event.payment_id)
    if order is None:
        log.warning(
            "payment event for an unknown payment",
            extra={"event_id": event.id, "payment_id": event.payment_id},
        )
        return "unknown payment"
    updated = await orders.apply_payment(
        order=order, state=event.state, amount=event.amount, message=event.message
    )
    return updated.status.value
