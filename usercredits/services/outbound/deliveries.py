"""One delivery per event and endpoint: made by the relay, claimed and sent by any
instance's dispatcher, retried with back-off for three days, inspected and replayed by
admins.

A claim is one conditional update: it pushes the delivery's `next_attempt_at` past the
attempt's time limit and stamps it with a token, so no other worker takes it meanwhile;
if the process dies mid-attempt, the delivery is due again when the claim lapses, and is
sent again with the same event id (at least once). Only the outcome of the claim's own
attempt is recorded."""

import asyncio
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from usercredits.models.collections import Collection
from usercredits.services.clock import Clock, due_by
from usercredits.services.errors import NotFound, shown
from usercredits.services.ids import object_id, ordered_id
from usercredits.services.outbound.derive import Event
from usercredits.services.outbound.endpoints import Endpoint
from usercredits.services.outbound.signing import RETRY_FOR, retry_delay
from usercredits.services.pages import newest_first
from usercredits.services.writes import duplicates_only

MAX_PAGE = 100
MAX_ERROR = 300


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILING = "failing"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_response_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sending: bool
    """An attempt is running (its claim holds `next_attempt_at` until it ends)."""

    @classmethod
    def of(cls, raw: dict[str, Any]) -> "Delivery":
        return cls(
            id=str(raw["_id"]),
            endpoint_id=raw["endpoint_id"],
            event_id=raw["event_id"],
            event_type=raw["event_type"],
            status=DeliveryStatus(raw["status"]),
            attempts=raw.get("attempts", 0),
            last_response_status=raw.get("last_response_status"),
            last_error=raw.get("last_error"),
            next_attempt_at=raw.get("next_attempt_at"),
            created_at=raw["created_at"],
            sending=raw.get("claim") is not None,
        )


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a worker holds: send `body`, then record the outcome with `claim`."""

    delivery: Delivery
    body: str
    claim: str
    retry_since: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    response_status: int | None = None
    error: str | None = None


class Deliveries:
    def __init__(
        self, *, deliveries: Collection, clock: Clock, retry_base_seconds: float = 5.0
    ) -> None:
        self._clock = clock
        self._base = retry_base_seconds
        self._collection = deliveries
        self._made = asyncio.Event()

    async def made_or(self, seconds: float) -> None:
        """Returns when this process has made a delivery due now, or after `seconds`:
        other processes' are found by looking, this one's need not wait for it."""
        try:
            async with asyncio.timeout(seconds):
                await self._made.wait()
        except TimeoutError:
            pass
        self._made.clear()

    async def enqueue(self, events: list[Event], endpoints: list[Endpoint]) -> int:
        """One delivery per event and endpoint that wants it; those already made are left
        as they are. Returns how many are new."""
        now = self._clock.now()
        documents = [
            {
                "_id": ordered_id(now),
                "endpoint_id": endpoint.id,
                "event_id": event.id,
                "event_type": event.type,
                "body": event.body(),
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "retry_since": now,
            }
            for event in events
            for endpoint in endpoints
            if endpoint.wants(event.type)
        ]
        if not documents:
            return 0
        made = len(documents)
        try:
            await self._collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            made -= len(duplicates_only(exc))
        if made:
            self._made.set()
        return made

    async def claim(self, *, hold: timedelta) -> Claimed | None:
        """The most overdue delivery, held for `hold`; None when none is due."""
        now = self._clock.now()
        token = secrets.token_hex(8)
        raw = await self._collection.find_one_and_update(
            {"next_attempt_at": due_by(now)},
            {"$set": {"next_attempt_at": now + hold, "claim": token}, "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            return None
        since = raw["retry_since"] if "retry_since" in raw else raw["created_at"]
        return Claimed(Delivery.of(raw), raw["body"], token, since)

    async def record(
        self, claimed: Claimed, outcome: Outcome, rng: random.Random | None = None
    ) -> Delivery | None:
        """Records the attempt's outcome, unless the claim lapsed and another worker took
        the delivery; then None."""
        now = self._clock.now()
        fields: dict[str, Any] = {
            "last_response_status": outcome.response_status,
            "last_error": None if outcome.error is None else outcome.error[:MAX_ERROR],
        }
        unset: dict[str, str] = {"claim": ""}
        if outcome.ok:
            fields["status"] = DeliveryStatus.SUCCEEDED.value
            unset["next_attempt_at"] = ""
        elif now - claimed.retry_since >= RETRY_FOR:
            fields["status"] = DeliveryStatus.FAILED.value
            unset["next_attempt_at"] = ""
        else:
            fields["status"] = DeliveryStatus.FAILING.value
            fields["next_attempt_at"] = now + retry_delay(
                claimed.delivery.attempts, self._base, rng
            )
        raw = await self._collection.find_one_and_update(
            {"_id": ObjectId(claimed.delivery.id), "claim": claimed.claim},
            {"$set": fields, "$unset": unset},
            return_document=ReturnDocument.AFTER,
        )
        return None if raw is None else Delivery.of(raw)

    async def give_up(self, claimed: Claimed, reason: str) -> None:
        """Ends a delivery that cannot be sent (its endpoint is gone or off)."""
        await self._collection.update_one(
            {"_id": ObjectId(claimed.delivery.id), "claim": claimed.claim},
            {
                "$set": {"status": DeliveryStatus.FAILED.value, "last_error": reason},
                "$unset": {"claim": "", "next_attempt_at": ""},
            },
        )

    async def page(
        self,
        *,
        endpoint_id: str | None,
        status: DeliveryStatus | None,
        first: object,
        after: str | None,
    ) -> tuple[list[Delivery], bool]:
        """Deliveries newest first, of one endpoint and in one status if given."""
        query: dict[str, Any] = {}
        if endpoint_id is not None:
            query["endpoint_id"] = endpoint_id
        if status is not None:
            query["status"] = status.value
        found, more = await newest_first(
            self._collection, query, first=first, after=after, most=MAX_PAGE
        )
        return [Delivery.of(raw) for raw in found], more

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Sends the delivery again as soon as a worker is free, with three more days of
        retries, whatever became of it; the event id stays the same."""
        now = self._clock.now()
        raw = await self._collection.find_one_and_update(
            {"_id": object_id(delivery_id, "webhook delivery")},
            {
                "$set": {
                    "status": DeliveryStatus.PENDING.value,
                    "next_attempt_at": now,
                    "retry_since": now,
                },
                "$unset": {"claim": ""},
            },
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            raise NotFound(f"webhook delivery {shown(delivery_id)} does not exist")
        self._made.set()
        return Delivery.of(raw)
