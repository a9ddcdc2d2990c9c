"""Outbound webhooks: the endpoints admins register, one delivery per event and endpoint,
the alert rules per offer group and each balance's alert state, and where the event relay
stands in the change stream."""

from datetime import datetime

import pymongo
from beanie import Document
from pydantic import Field
from pymongo import IndexModel


class WebhookEndpointDocument(Document):
    url: str
    event_types: list[str] = Field(default_factory=list)
    """Empty: every type."""
    enabled: bool = True
    secret: str
    """`whsec_` and the base64 of the signing key (Standard Webhooks)."""
    created_at: datetime
    failing_since: datetime | None = None
    """The first failed attempt since the last success: three days of it disable the
    endpoint."""
    disabled_reason: str | None = None

    class Settings:
        name = "webhook_endpoints"


class WebhookDeliveryDocument(Document):
    """One event for one endpoint, with its body as signed and sent at every attempt."""

    endpoint_id: str
    event_id: str
    event_type: str
    body: str
    status: str
    """pending, succeeded, failing or failed (services/outbound/deliveries.py)."""
    attempts: int = 0
    last_response_status: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    """When a worker may take it: absent once it succeeded or failed for good, and pushed
    past the attempt's time limit while an attempt runs (the claim)."""
    claim: str | None = None
    """The running attempt's token: only its outcome is recorded."""
    created_at: datetime
    retry_since: datetime
    """When its retries started: its creation, or the admin's redelivery."""

    class Settings:
        name = "webhook_deliveries"
        indexes = [
            IndexModel(
                [("event_id", pymongo.ASCENDING), ("endpoint_id", pymongo.ASCENDING)],
                name="event_endpoint_unique",
                unique=True,
            ),
            IndexModel([("next_attempt_at", pymongo.ASCENDING)], name="due", sparse=True),
            IndexModel(
                [("endpoint_id", pymongo.ASCENDING), ("_id", pymongo.DESCENDING)],
                name="endpoint_newest",
            ),
            IndexModel(
                [("status", pymongo.ASCENDING), ("_id", pymongo.DESCENDING)], name="status_newest"
            ),
        ]


class AlertRuleDocument(Document):
    """The offer group is the document id: one rule per group."""

    id: str  # type: ignore[assignment]
    low_balance: int
    hysteresis: int
    expiring_within_seconds: int
    updated_at: datetime

    class Settings:
        name = "alert_rules"


class AlertStateDocument(Document):
    """Whether a balance is low, as of its ledger entry `seq`; the balance's id is this
    document's id. Written only when the state flips."""

    id: str  # type: ignore[assignment]
    low: bool
    seq: int

    class Settings:
        name = "alert_states"


class StreamPosition(Document):
    """Where a durable change stream reader stands: its name is the document id."""

    id: str  # type: ignore[assignment]
    resume_token: dict[str, object]
    saved_at: datetime
    idle: bool = False
    """The reader stopped on purpose (nothing to read for): the next one starts afresh
    instead of replaying what happened meanwhile."""

    class Settings:
        name = "stream_positions"
