"""Which events a change makes: pure functions of a ledger entry, an order or a balance's
lots. An event's id is derived from what caused it (the entry, the order's new status, the
lot), so deriving it twice (after a crash, or in two processes) makes the same event,
which the deliveries' unique index then keeps once.

Ordering: balance events carry the group's `sequence` (the ledger entry's `seq`) and order
events the order's `sequence` (its history's length), so a receiver that has seen a higher
one for the same balance or order can drop a late, stale event."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from usercredits.services.money import Money
from usercredits.services.outbound.alerts import AlertRule, Crossing, cross
from usercredits.values import LedgerEntry, LedgerReason, Lot, Order, OrderStatus, Plan, PlanStatus

ORDER_EVENTS = {
    OrderStatus.PAID: "order.paid",
    OrderStatus.REFUSED: "order.failed",
    OrderStatus.ERROR: "order.failed",
    OrderStatus.REFUNDED: "order.refunded",
}
TOP_UP_EVENTS = {
    OrderStatus.PAID: "topup.succeeded",
    OrderStatus.REFUSED: "topup.failed",
    OrderStatus.ERROR: "topup.failed",
}
PLAN_EVENTS = {PlanStatus.PAST_DUE: "plan.past_due", PlanStatus.CANCELED: "plan.canceled"}


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]

    def body(self) -> str:
        """The JSON body every endpoint receives, byte for byte at every attempt."""
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.type,
                "timestamp": stamp(self.timestamp),
                "data": self.data,
            }
        ).decode()


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stamp_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else stamp(moment)


def _balance(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "userId": entry.user_id,
        "offerGroup": entry.offer_group,
        "balance": entry.balance_after,
        "sequence": entry.seq,
        "entryId": entry.id,
    }


def ledger_events(
    entry: LedgerEntry, rule: AlertRule | None, *, low: bool | None
) -> tuple[list[Event], Crossing | None]:
    """The events of one ledger entry, and the balance's alert state after it (None: the
    group has no rule). `low`: the state before it; None when no state is kept yet, which
    is then read from the balance before the entry."""
    events: list[Event] = []
    before = entry.balance_before
    at = entry.created_at
    crossing = None
    if rule is not None and low is None and entry.seq == 1:
        # A group's first credit is where its balance starts, not a crossing.
        crossing = Crossing(low=entry.balance_after <= rule.low_balance, event=None)
    elif rule is not None:
        crossing = cross(
            rule,
            low=before <= rule.low_balance if low is None else low,
            after=entry.balance_after,
        )
        if crossing.event is not None:
            data = {
                **_balance(entry),
                "lowBalance": rule.low_balance,
                "hysteresis": rule.hysteresis,
            }
            events.append(Event(f"evt_{entry.id}_{crossing.event}", crossing.event, at, data))
    if before > 0 and entry.balance_after == 0:
        events.append(
            Event(f"evt_{entry.id}_balance.depleted", "balance.depleted", at, _balance(entry))
        )
    if entry.reason is LedgerReason.EXPIRY:
        data = {
            **_balance(entry),
            "tokens": -entry.tokens,
            "lots": [{"lotId": d.lot_id, "tokens": d.tokens} for d in entry.lots],
        }
        events.append(Event(f"evt_{entry.id}_tokens.expired", "tokens.expired", at, data))
    return events, crossing


def order_events(order: Order) -> list[Event]:
    """The events of every status the order's history went through (a change read late
    may show a later status than the write that made it: none is skipped); an auto
    top-up's order also tells topup.succeeded or topup.failed, and a plan's paid period
    plan.renewed."""
    total = Money(order.total_minor_units, order.currency)
    events: list[Event] = []
    for sequence, step in enumerate(order.history, start=1):
        kinds = [ORDER_EVENTS.get(step.status)]
        if order.top_up:
            kinds.append(TOP_UP_EVENTS.get(step.status))
        if order.plan_id is not None and step.status is OrderStatus.PAID:
            kinds.append("plan.renewed")
        data = {
            "orderId": order.id,
            "userId": order.user_id,
            "offerId": order.offer_id,
            "offerGroup": order.offer_group,
            "status": step.status.name,
            "tokens": order.token_count,
            "amount": total.amount,
            "currency": order.currency,
            "sequence": sequence,
            "message": step.message,
        }
        if order.plan_id is not None:
            data |= {
                "planId": order.plan_id,
                "starts": _stamp_or_none(order.starts),
                "expires": _stamp_or_none(order.expires),
            }
        events.extend(
            Event(f"evt_{order.id}_{kind}", kind, step.at, data) for kind in kinds if kind
        )
    return events


def plan_events(plan: Plan) -> list[Event]:
    """plan.past_due and plan.canceled for every time the plan's history reached them
    (a plan may fall past due at several renewals: each is its own event)."""
    return [
        Event(
            f"evt_{plan.id}_{sequence}_{PLAN_EVENTS[step.status]}",
            PLAN_EVENTS[step.status],
            step.at,
            {
                "planId": plan.id,
                "userId": plan.user_id,
                "offerId": plan.offer_id,
                "offerGroup": plan.offer_group,
                "status": step.status.name,
                "currentPeriodEnd": _stamp_or_none(plan.current_period_end),
                "sequence": sequence,
                "message": step.message,
            },
        )
        for sequence, step in enumerate(plan.history, start=1)
        if step.status in PLAN_EVENTS
    ]


def expiring_events(
    *, user_id: str, offer_group: str, lots: Iterable[Lot], now: datetime, within: timedelta
) -> list[Event]:
    """tokens.expiring for every lot of the balance with spendable tokens that expires
    within `within` of `now`: once per lot, as its id is the lot's."""
    return [
        Event(
            f"evt_{lot.id}_tokens.expiring",
            "tokens.expiring",
            now,
            {
                "userId": user_id,
                "offerGroup": offer_group,
                "lotId": lot.id,
                "tokens": lot.remaining,
                "expires": stamp(lot.expires),
            },
        )
        for lot in lots
        if lot.expires is not None and lot.remaining > 0 and now < lot.expires <= now + within
    ]
