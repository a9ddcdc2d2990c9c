"""The receivers admins register: a URL, the event types it wants and whether it is on.
Each has its own signing secret, shown once when it is made."""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from usercredits.models import WebhookEndpointDocument
from usercredits.models.collections import Collection, insert, save
from usercredits.services.clock import Clock
from usercredits.services.errors import InvalidInput, NotFound, shown
from usercredits.services.ids import object_id
from usercredits.services.outbound.addresses import check_url
from usercredits.services.outbound.signing import RETRY_FOR, new_secret

EVENT_TYPES = frozenset(
    {
        "balance.low",
        "balance.depleted",
        "balance.recovered",
        "tokens.expiring",
        "tokens.expired",
        "order.paid",
        "order.failed",
        "order.refunded",
        "topup.succeeded",
        "topup.failed",
        "plan.renewed",
        "plan.past_due",
        "plan.canceled",
    }
)
MAX_ENDPOINTS = 50
RELAY_WAIT = timedelta(seconds=10)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    event_types: tuple[str, ...]
    enabled: bool
    created_at: datetime
    failing_since: datetime | None
    disabled_reason: str | None

    @classmethod
    def of(cls, document: WebhookEndpointDocument) -> "Endpoint":
        return cls(
            id=str(document.id),
            url=document.url,
            event_types=tuple(document.event_types),
            enabled=document.enabled,
            created_at=document.created_at,
            failing_since=document.failing_since,
            disabled_reason=document.disabled_reason,
        )

    def wants(self, event_type: str) -> bool:
        return self.enabled and (not self.event_types or event_type in self.event_types)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """What an admin states of an endpoint."""

    url: str
    event_types: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    endpoint: Endpoint
    secret: str
    """Shown once."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how one delivery is sent."""

    endpoint: Endpoint
    secret: str


class WebhookEndpoints:
    def __init__(
        self, *, endpoints: Collection, positions: Collection, clock: Clock, production: bool
    ) -> None:
        """`positions`: the change stream readers' positions, which say whether the relay
        reads (`_relay_reading`)."""
        self._endpoints = endpoints
        self._positions = positions
        self._clock = clock
        self._production = production

    def _checked(self, spec: EndpointSpec) -> EndpointSpec:
        url = check_url(spec.url, production=self._production)
        unknown = sorted(set(spec.event_types) - EVENT_TYPES)
        if unknown:
            raise InvalidInput(
                f"unknown event types {shown(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}"
            )
        return EndpointSpec(
            url=url, event_types=tuple(dict.fromkeys(spec.event_types)), enabled=spec.enabled
        )

    async def create(self, spec: EndpointSpec) -> CreatedEndpoint:
        checked = self._checked(spec)
        if await self._endpoints.count_documents({}) >= MAX_ENDPOINTS:
            raise InvalidInput(f"at most {MAX_ENDPOINTS} webhook endpoints")
        document = WebhookEndpointDocument(
            url=checked.url,
            event_types=list(checked.event_types),
            enabled=checked.enabled,
            secret=new_secret(),
            created_at=self._clock.now(),
        )
        await insert(self._endpoints, document)
        if document.enabled:
            await self._relay_reading()
        return CreatedEndpoint(endpoint=Endpoint.of(document), secret=document.secret)

    async def update(self, endpoint_id: str, spec: EndpointSpec) -> Endpoint:
        """Replaces what the admin states; enabling an endpoint clears why it was off."""
        checked = self._checked(spec)
        document = await self._get(endpoint_id)
        document.url = checked.url
        document.event_types = list(checked.event_types)
        enabling = checked.enabled and not document.enabled
        if enabling:
            document.failing_since = None
            document.disabled_reason = None
        document.enabled = checked.enabled
        await save(self._endpoints, document)
        if enabling:
            await self._relay_reading()
        return Endpoint.of(document)

    async def delete(self, endpoint_id: str) -> Endpoint:
        """Removes the endpoint; its deliveries stay for inspection and are not sent."""
        document = await self._get(endpoint_id)
        await self._endpoints.delete_one({"_id": document.id})
        return Endpoint.of(document)

    async def list_endpoints(self) -> list[Endpoint]:
        found = self._endpoints.find({})
        return [Endpoint.of(WebhookEndpointDocument.model_validate(raw)) async for raw in found]

    async def _relay_reading(self) -> None:
        """Waits until the webhook relay reads the changes (server/relay.py), so that
        every change after an endpoint is enabled reaches it: with no endpoint enabled
        the relay reads nothing, and starts from the moment it opens its stream. Gives
        up after RELAY_WAIT (no relay runs, as in a command line tool)."""
        positions = self._positions
        deadline = time.monotonic() + RELAY_WAIT.total_seconds()
        while await positions.find_one({"idle": False}) is None:
            if time.monotonic() >= deadline:
                log.warning("no webhook relay is reading; events wait until one starts")
                return
            await asyncio.sleep(0.05)

    async def target(self, endpoint_id: str) -> Target | None:
        """The endpoint and its secret, for a delivery; None if it was deleted."""
        raw = await self._endpoints.find_one({"_id": object_id(endpoint_id, "endpoint")})
        if raw is None:
            return None
        document = WebhookEndpointDocument.model_validate(raw)
        return Target(Endpoint.of(document), document.secret)

    async def note_outcome(self, endpoint: Endpoint, *, ok: bool, error: str | None) -> None:
        """Keeps when the endpoint started failing; three days of it disable it with the
        last error as the reason."""
        collection = self._endpoints
        oid = object_id(endpoint.id, "endpoint")
        if ok:
            if endpoint.failing_since is not None:
                await collection.update_one({"_id": oid}, {"$set": {"failing_since": None}})
            return
        now = self._clock.now()
        since = endpoint.failing_since
        if since is None:
            await collection.update_one(
                {"_id": oid, "failing_since": None}, {"$set": {"failing_since": now}}
            )
        elif now - since >= RETRY_FOR:
            reason = f"every delivery failed since {since.isoformat()}; last: {error}"
            await collection.update_one(
                {"_id": oid, "enabled": True},
                {"$set": {"enabled": False, "disabled_reason": reason}},
            )

    async def _get(self, endpoint_id: str) -> WebhookEndpointDocument:
        raw = await self._endpoints.find_one({"_id": object_id(endpoint_id, "endpoint")})
        if raw is None:
            raise NotFound(f"webhook endpoint {shown(endpoint_id)} does not exist")
        document: WebhookEndpointDocument = WebhookEndpointDocument.model_validate(raw)
        return document
