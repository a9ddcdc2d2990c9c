"""Turns committed changes into webhook deliveries: ledger entries into balance and expiry
events, order writes into order events, and balances whose lots near their end into
tokens.expiring. The server's relay (server/relay.py) feeds it the change stream and keeps
the stream's resume token only once a batch is published, so a crash replays the batch:
the events' ids are derived from their causes and each balance's alert state remembers the
entry it was decided at, so a replay publishes nothing twice.

Within a balance, ledger entries reach the stream in `seq` order: a movement's entries are
in the ledger before the next movement of that balance can commit (services/wallets/movements.py,
step 2)."""

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pymongo import UpdateOne

from usercredits.models import AlertRuleDocument, WebhookEndpointDocument, balance_id
from usercredits.models.collections import Collection
from usercredits.models.wallet import LOTS
from usercredits.services.clock import EPOCH
from usercredits.services.outbound.alerts import AlertRule, AlertRules
from usercredits.services.outbound.deliveries import Deliveries
from usercredits.services.outbound.derive import (
    Event,
    expiring_events,
    ledger_events,
    order_events,
    plan_events,
)
from usercredits.services.outbound.endpoints import Endpoint, WebhookEndpoints
from usercredits.values import LedgerEntry, Lot, Order, Plan
from usercredits.values.changes import Touched

REMEMBERED = 100_000
"""Alert states and announced lots this process keeps in memory (bounded LRUs)."""
EXPIRING_BATCH = 500
"""Balances whose lots one read of the expiring scan fetches."""


@dataclass(frozen=True, slots=True)
class State:
    low: bool
    seq: int


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class Publisher:
    def __init__(
        self,
        *,
        states: Collection,
        balances: Collection,
        endpoints: WebhookEndpoints,
        alerts: AlertRules,
        deliveries: Deliveries,
    ) -> None:
        """`states`: each balance's alert state; `balances`: read for lots about to expire."""
        self._alert_states = states
        self._balances = balances
        self._endpoints = endpoints
        self._alerts = alerts
        self._deliveries = deliveries
        self._states: _Lru[str, State] = _Lru(REMEMBERED)
        self._announced: _Lru[str, bool] = _Lru(REMEMBERED)
        self.watched = (
            WebhookEndpointDocument.Settings.name,
            AlertRuleDocument.Settings.name,
        )
        """The collections whose writes must reach `publish` as `Touched`."""
        self._listeners: list[Endpoint] = []
        self._rules: dict[str, AlertRule] = {}

    async def start(self) -> None:
        """Reads the endpoints and rules, and forgets what this process remembered: call
        it before the first batch, as another process may have published meanwhile."""
        self._states.clear()
        self._announced.clear()
        self._listeners = await self.listening()
        self._rules = await self._alerts.rules()

    async def listening(self) -> list[Endpoint]:
        """The enabled endpoints; with none, nothing need be published."""
        return [e for e in await self._endpoints.list_endpoints() if e.enabled]

    async def publish(self, changes: list[LedgerEntry | Order | Plan | Touched]) -> int:
        """Makes the deliveries of these changes, in the order given: an endpoint made
        or a rule set in the middle of the batch applies to the changes after it. Returns
        how many deliveries are new."""
        events: list[Event] = []
        decided: dict[str, State] = {}
        changed: set[str] = set()
        made = 0
        for change in changes:
            if isinstance(change, Touched):
                made += await self._deliveries.enqueue(events, self._listeners)
                events = []
                if change.collection == self.watched[0]:
                    self._listeners = await self.listening()
                else:
                    self._rules = await self._alerts.rules()
            elif isinstance(change, Order):
                events.extend(order_events(change))
            elif isinstance(change, Plan):
                events.extend(plan_events(change))
            else:
                rule = self._rules.get(change.offer_group)
                events.extend(await self._entry_events(change, rule, decided, changed))
        made += await self._deliveries.enqueue(events, self._listeners)
        if changed:
            await self._alert_states.bulk_write(
                [
                    UpdateOne(
                        {"_id": bid},
                        {"$set": {"low": decided[bid].low, "seq": decided[bid].seq}},
                        upsert=True,
                    )
                    for bid in changed
                ],
                ordered=False,
            )
        # Remembered only once written: a batch that failed is replayed from the database.
        for bid, state in decided.items():
            self._states.put(bid, state)
        return made

    async def _entry_events(
        self,
        entry: LedgerEntry,
        rule: AlertRule | None,
        decided: dict[str, State],
        changed: set[str],
    ) -> list[Event]:
        if rule is None:
            return ledger_events(entry, None, low=None)[0]
        bid = balance_id(entry.user_id, entry.offer_group)
        state = decided.get(bid) or self._states.get(bid) or await self._stored(bid)
        if state is not None and entry.seq <= state.seq:
            # Decided before a crash or by another relay: only the stateless events again.
            return ledger_events(entry, None, low=None)[0]
        events, crossing = ledger_events(entry, rule, low=None if state is None else state.low)
        assert crossing is not None  # a rule was given
        decided[bid] = State(low=crossing.low, seq=entry.seq)
        if state is None or crossing.low != state.low:
            changed.add(bid)
        return events

    async def _stored(self, bid: str) -> State | None:
        raw = await self._alert_states.find_one({"_id": bid})
        return None if raw is None else State(low=raw["low"], seq=raw["seq"])

    async def announce_expiring(self, now: datetime) -> int:
        """tokens.expiring for the lots of ruled groups that end within their rule's
        window; each lot once. Returns how many deliveries are new."""
        endpoints = self._listeners
        if not any(e.wants("tokens.expiring") for e in endpoints):
            return 0
        rules = {g: r for g, r in self._rules.items() if r.expiring_within_seconds}
        if not rules:
            return 0
        balances = self._balances
        # `due_at` is never later than `next_expiry`; the embedded database plans a scan
        # for a filter that names more than the index (Balance.due_at).
        horizon = now + max(rule.expiring_within for rule in rules.values())
        due = balances.find(
            {"due_at": {"$gte": EPOCH, "$lte": horizon}}, {"offer_group": 1, "next_expiry": 1}
        )
        expiring = [
            raw["_id"]
            async for raw in due
            if (rule := rules.get(raw["offer_group"])) is not None
            and raw.get("next_expiry") is not None
            and raw["next_expiry"] <= now + rule.expiring_within
        ]
        events: list[Event] = []
        for start in range(0, len(expiring), EXPIRING_BATCH):
            batch = expiring[start : start + EXPIRING_BATCH]
            cursor = balances.find(
                {"_id": {"$in": batch}}, {"user_id": 1, "offer_group": 1, "lots": 1}
            )
            async for raw in cursor:
                lots = [lot for lot in _lots(raw) if self._announced.get(lot.id) is None]
                events += expiring_events(
                    user_id=raw["user_id"],
                    offer_group=raw["offer_group"],
                    lots=lots,
                    now=now,
                    within=rules[raw["offer_group"]].expiring_within,
                )
        made = await self._deliveries.enqueue(events, endpoints)
        for event in events:
            self._announced.put(event.data["lotId"], True)
        return made


def _lots(raw: dict[str, Any]) -> list[Lot]:
    value = raw.get("lots", "[]")
    return LOTS.validate_json(value) if isinstance(value, str) else LOTS.validate_python(value)
