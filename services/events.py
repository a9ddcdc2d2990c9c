"""In-process fan-out of domain events to live subscribers. No GraphQL, no HTTP.

The server feeds the hub from one MongoDB change stream per process (server/changes.py),
so every instance sees every committed change; the hub then hands each event to the
subscribers of that user in this process. A subscriber is removed the moment its iterator
is closed (unsubscribe or disconnect). A subscriber that falls `max_backlog` events behind
is ended with SubscriberTooSlow rather than silently skipping events.
"""

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from models import LedgerEntry, Order

E = TypeVar("E")


class Topic(StrEnum):
    BALANCE = "balance"
    ORDER = "order"


@dataclass(frozen=True, slots=True)
class BalanceChanged:
    user_id: str
    offer_group: str
    tokens: int
    delta: int
    reason: str
    at: datetime

    @classmethod
    def of(cls, entry: LedgerEntry) -> "BalanceChanged":
        return cls(
            user_id=entry.user_id,
            offer_group=entry.offer_group,
            tokens=entry.balance_after,
            delta=entry.tokens,
            reason=entry.reason.value,
            at=entry.created_at,
        )


class SubscriberTooSlow(Exception):
    """The subscriber did not read its events fast enough; it should subscribe again."""


class _Channel(Generic[E]):
    def __init__(self, max_backlog: int) -> None:
        self.queue: asyncio.Queue[E | SubscriberTooSlow] = asyncio.Queue(max_backlog + 1)
        self.max_backlog = max_backlog

    def offer(self, event: E) -> bool:
        """Queues an event; False (after queueing the error) if the subscriber is too slow."""
        if self.queue.qsize() >= self.max_backlog:
            self.queue.put_nowait(SubscriberTooSlow(f"more than {self.max_backlog} events behind"))
            return False
        self.queue.put_nowait(event)
        return True


class EventHub:
    def __init__(self, *, max_backlog: int = 1000) -> None:
        self._max_backlog = max_backlog
        self._channels: dict[tuple[Topic, str], set[_Channel[object]]] = defaultdict(set)

    @property
    def subscriber_count(self) -> int:
        return sum(len(channels) for channels in self._channels.values())

    def publish(self, topic: Topic, user_id: str, event: object) -> None:
        key = (topic, user_id)
        for channel in list(self._channels.get(key, ())):
            if not channel.offer(event):
                self._drop(key, channel)

    def publish_entry(self, entry: LedgerEntry) -> None:
        self.publish(Topic.BALANCE, entry.user_id, BalanceChanged.of(entry))

    def publish_order(self, order: Order) -> None:
        self.publish(Topic.ORDER, order.user_id, order)

    async def listen(self, topic: Topic, user_id: str) -> AsyncIterator[object]:
        """Yields the user's events from now on, until the caller stops iterating."""
        key = (topic, user_id)
        channel: _Channel[object] = _Channel(self._max_backlog)
        self._channels[key].add(channel)
        try:
            while True:
                event = await channel.queue.get()
                if isinstance(event, SubscriberTooSlow):
                    raise event
                yield event
        finally:
            self._drop(key, channel)

    def _drop(self, key: tuple[Topic, str], channel: _Channel[object]) -> None:
        channels = self._channels.get(key)
        if channels is None:
            return
        channels.discard(channel)
        if not channels:
            del self._channels[key]
