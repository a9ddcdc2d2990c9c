"""GraphQL types of outbound webhooks and balance alerts (admins only)."""

from datetime import datetime

import strawberry

from usercredits.schema.types import PageInfo
from usercredits.services.outbound.alerts import AlertRule as AlertRuleValue
from usercredits.services.outbound.deliveries import Delivery, DeliveryStatus
from usercredits.services.outbound.endpoints import CreatedEndpoint, Endpoint, EndpointSpec

DeliveryStatusType = strawberry.enum(DeliveryStatus, name="DeliveryStatus")


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    event_types: list[str] = strawberry.field(description="empty: every type")
    enabled: bool
    created_at: datetime
    failing_since: datetime | None = strawberry.field(
        description="the first failed delivery since the last success; three days of "
        "failures disable the endpoint"
    )
    disabled_reason: str | None = strawberry.field(
        description="why the service disabled the endpoint"
    )

    @classmethod
    def of(cls, endpoint: Endpoint) -> "WebhookEndpoint":
        return cls(
            id=strawberry.ID(endpoint.id),
            url=endpoint.url,
            event_types=list(endpoint.event_types),
            enabled=endpoint.enabled,
            created_at=endpoint.created_at,
            failing_since=endpoint.failing_since,
            disabled_reason=endpoint.disabled_reason,
        )


@strawberry.type
class CreatedWebhookEndpoint:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(description="shown once")

    @classmethod
    def of(cls, created: CreatedEndpoint) -> "CreatedWebhookEndpoint":
        return cls(endpoint=WebhookEndpoint.of(created.endpoint), secret=created.secret)


@strawberry.type
class WebhookDelivery:
    id: strawberry.ID
    endpoint_id: strawberry.ID
    event_id: strawberry.ID
    event_type: str
    status: DeliveryStatusType  # type: ignore[valid-type]
    attempts: int
    last_response_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sending: bool = strawberry.field(
        description="an attempt is running now; nextAttemptAt is when it is given up as lost"
    )

    @classmethod
    def of(cls, delivery: Delivery) -> "WebhookDelivery":
        return cls(
            id=strawberry.ID(delivery.id),
            endpoint_id=strawberry.ID(delivery.endpoint_id),
            event_id=strawberry.ID(delivery.event_id),
            event_type=delivery.event_type,
            status=delivery.status,
            attempts=delivery.attempts,
            last_response_status=delivery.last_response_status,
            last_error=delivery.last_error,
            next_attempt_at=delivery.next_attempt_at,
            created_at=delivery.created_at,
            sending=delivery.sending,
        )


@strawberry.type
class WebhookDeliveryEdge:
    node: WebhookDelivery
    cursor: str


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, deliveries: list[Delivery], has_next_page: bool) -> "WebhookDeliveryConnection":
        edges = [WebhookDeliveryEdge(node=WebhookDelivery.of(d), cursor=d.id) for d in deliveries]
        return cls(edges=edges, page_info=PageInfo.after([e.cursor for e in edges], has_next_page))


@strawberry.type(
    description="When a group's balance alerts fire. balance.low fires once on falling to "
    "lowBalance or below and again only after balance.recovered (back above lowBalance + "
    "hysteresis)."
)
class AlertRule:
    offer_group: str
    low_balance: int
    hysteresis: int
    expiring_within_seconds: int

    @classmethod
    def of(cls, rule: AlertRuleValue) -> "AlertRule":
        return cls(
            offer_group=rule.offer_group,
            low_balance=rule.low_balance,
            hysteresis=rule.hysteresis,
            expiring_within_seconds=rule.expiring_within_seconds,
        )


@strawberry.input
class WebhookEndpointInput:
    url: str
    event_types: list[str] | None = strawberry.field(default_factory=list)
    enabled: bool | None = True

    def spec(self) -> EndpointSpec:
        return EndpointSpec(
            url=self.url,
            event_types=tuple(self.event_types or ()),
            enabled=True if self.enabled is None else self.enabled,
        )


@strawberry.input
class AlertRuleInput:
    offer_group: str
    low_balance: int
    hysteresis: int | None = 0
    expiring_within_seconds: int | None = 604800

    def rule(self) -> AlertRuleValue:
        return AlertRuleValue(
            offer_group=self.offer_group,
            low_balance=self.low_balance,
            hysteresis=0 if self.hysteresis is None else self.hysteresis,
            expiring_within_seconds=(
                604800 if self.expiring_within_seconds is None else self.expiring_within_seconds
            ),
        )
