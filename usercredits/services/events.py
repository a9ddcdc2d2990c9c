"""In-process fan-out of domain events to live subscribers. No GraphQL, no HTTP.

The server feeds the hub from one MongoDB change stream per process (server/changes.py),
so every instance sees every committed change; the hub then hands each event to the
subscribers of that user in this process. A subscriber is removed the moment its iterator
is closed (unsubscribe or disconnect). A subscriber that falls `max_backlog` events behind
is ended with SubscriberTooSlow rather than silently skipping events.

One event comes from the services instead: a debit or reservation refused for want of
tokens writes nothing for a change stream to see, so the wallets tell the hub themselves
(the auto top-up trigger listens).
"""

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from usercredits.values import LedgerEntry, Order, Plan

E = TypeVar("E")


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
    """One subscriber's events not yet read. A list and the reader's one waiting future,
    not an asyncio.Queue: publishing to a user with 1,000 open tabs puts an event in 1,000
    channels, and a queue's bookkeeping (task counts, its `finished` event, a list of
    getters) cost more than the rest of the publication. A list, not a deque: it is
    almost always empty, and an empty deque takes 760 bytes of every idle subscription
    (a list 56); taking from its front is cheap at these lengths."""

    def __init__(self, max_backlog: int) -> None:
        self._events: list[E] = []
        self._max_backlog = max_backlog
        self._too_slow = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, event: E) -> bool:
        """Queues an event; False (and the reader is told) if the subscriber is too slow."""
        if len(self._events) >= self._max_backlog:
            self._too_slow = True
        else:
            self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return not self._too_slow

    async def next(self) -> E:
        """The oldest event not yet read, waiting for one if there is none; once the events
        queued before the subscriber fell too far behind are read, SubscriberTooSlow."""
        while not self._events:
            if self._too_slow:
                raise SubscriberTooSlow(f"more than {self._max_backlog} events behind")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.pop(0)


class _Topic(Generic[E]):
    """The subscribers of one kind of event, by user."""

    def __init__(self, max_backlog: int) -> None:
        self._max_backlog = max_backlog
        self._channels: dict[str, set[_Channel[E]]] = defaultdict(set)

    @property
    def subscriber_count(self) -> int:
        return sum(len(channels) for channels in self._channels.values())

    def publish(self, user_id: str, event: E) -> None:
        for channel in list(self._channels.get(user_id, ())):
            if not channel.offer(event):
                self._drop(user_id, channel)

    async def listen(self, user_id: str) -> AsyncIterator[E]:
        """Yields the user's events from now on, until the caller stops iterating."""
        channel: _Channel[E] = _Channel(self._max_backlog)
        self._channels[user_id].add(channel)
        try:
            while True:
                yield await channel.next()
        finally:
            self._drop(user_id, channel)

    def _drop(self, user_id: str, channel: _Channel[E]) -> None:
        channels = self._channels.get(user_id)
        if channels is None:
            return
        channels.discard(channel)
        if not channels:
            del self._channels[user_id]


class EventHub:
    def __init__(self, *, max_backlog: int = 1000) -> None:
        self._balances = _Topic[BalanceChanged](max_backlog)
        self._orders = _Topic[Order](max_backlog)
        self._plans = _Topic[Plan](max_backlog)
        self._shortfall_listeners: list[Callable[[str, str], None]] = []

    @property
    def subscriber_count(self) -> int:
        topics = (self._balances, self._orders, self._plans)
        return sum(topic.subscriber_count for topic in topics)

    def publish_entry(self, entry: LedgerEntry) -> None:
        self._balances.publish(entry.user_id, BalanceChanged.of(entry))

    def publish_order(self, order: Order) -> None:
        self._orders.publish(order.user_id, order)

    def balance_events(self, user_id: str) -> AsyncIterator[BalanceChanged]:
        """The user's balance changes from now on, until the caller stops iterating."""
        return self._balances.listen(user_id)

    def order_events(self, user_id: str) -> AsyncIterator[Order]:
        """The user's order updates from now on, until the caller stops iterating."""
        return self._orders.listen(user_id)

    def publish_plan(self, plan: Plan) -> None:
        self._plans.publish(plan.user_id, plan)

    def plan_events(self, user_id: str) -> AsyncIterator[Plan]:
        """The user's plan updates from now on, until the caller stops iterating."""
        return self._plans.listen(user_id)

    def on_shortfall(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        """Calls `listener(user_id, offer_group)` for each debit or reservation refused for
        want of live tokens, from now on; returns what stops it. A listener must not wait."""
        self._shortfall_listeners.append(listener)
        return lambda: self._shortfall_listeners.remove(listener)

    def publish_shortfall(self, user_id: str, offer_group: str) -> None:
        for listener in self._shortfall_listeners:
            listener(user_id, offer_group)
