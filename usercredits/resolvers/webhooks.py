"""Resolvers of outbound webhooks and balance alert rules (admins only)."""

import strawberry

from usercredits.schema.context import Context
from usercredits.schema.webhooks import (
    AlertRule,
    AlertRuleInput,
    CreatedWebhookEndpoint,
    DeliveryStatusType,
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookEndpoint,
    WebhookEndpointInput,
)
from usercredits.services.identity.access import ADMINS

Info = strawberry.Info[Context]


async def webhook_endpoints(info: Info) -> list[WebhookEndpoint]:
    info.context.principal.require(ADMINS)
    endpoints = await info.context.services.outbound.endpoints.list_endpoints()
    return [WebhookEndpoint.of(e) for e in endpoints]


async def webhook_deliveries(
    info: Info,
    endpoint_id: strawberry.ID | None = None,
    status: DeliveryStatusType | None = None,  # type: ignore[valid-type]
    first: int | None = 50,
    after: str | None = None,
) -> WebhookDeliveryConnection:
    """Newest first."""
    info.context.principal.require(ADMINS)
    found, more = await info.context.services.outbound.deliveries.page(
        endpoint_id=None if endpoint_id is None else str(endpoint_id),
        status=status,
        first=first,
        after=after,
    )
    return WebhookDeliveryConnection.of(found, more)


async def alert_rules(info: Info) -> list[AlertRule]:
    info.context.principal.require(ADMINS)
    rules = await info.context.services.outbound.alerts.rules()
    return [AlertRule.of(r) for r in rules.values()]


async def create_webhook_endpoint(
    info: Info, input: WebhookEndpointInput
) -> CreatedWebhookEndpoint:
    """Its signing secret is in this answer only."""
    info.context.principal.require(ADMINS)
    created = await info.context.services.outbound.endpoints.create(input.spec())
    return CreatedWebhookEndpoint.of(created)


async def update_webhook_endpoint(
    info: Info, id: strawberry.ID, input: WebhookEndpointInput
) -> WebhookEndpoint:
    info.context.principal.require(ADMINS)
    endpoint = await info.context.services.outbound.endpoints.update(str(id), input.spec())
    return WebhookEndpoint.of(endpoint)


async def delete_webhook_endpoint(info: Info, id: strawberry.ID) -> WebhookEndpoint:
    info.context.principal.require(ADMINS)
    return WebhookEndpoint.of(await info.context.services.outbound.endpoints.delete(str(id)))


async def redeliver_webhook(info: Info, delivery_id: strawberry.ID) -> WebhookDelivery:
    """Sends it again with the same event id, with three more days of retries."""
    info.context.principal.require(ADMINS)
    delivery = await info.context.services.outbound.deliveries.redeliver(str(delivery_id))
    return WebhookDelivery.of(delivery)


async def set_alert_rule(info: Info, input: AlertRuleInput) -> AlertRule:
    info.context.principal.require(ADMINS)
    return AlertRule.of(await info.context.services.outbound.alerts.set_rule(input.rule()))
