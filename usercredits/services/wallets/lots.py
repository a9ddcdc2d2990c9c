"""Lot arithmetic: which lots a debit draws, how a hold settles, what expiry and refunds
take. Pure functions over lists of lots, no database: the movement primitive applies
what they return in one write.

Debits draw live lots (not expired at `now`) in spending order: lowest priority number
first, then the soonest to expire (a lot that never expires last), then the oldest.
A lot stays in its balance while it holds tokens, spendable or held. A balance keeps its
lots in spending order: a new lot goes to its place, and every other function here keeps
the order it is given.
"""

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from usercredits.values import Lot, LotDraw

NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Drawn:
    """The lots after a movement, and what it took from (or gave to) each."""

    lots: list[Lot]
    draws: list[LotDraw]

    @property
    def tokens(self) -> int:
        return sum(d.tokens for d in self.draws)


def spending_order(lot: Lot) -> tuple[int, datetime, datetime, str]:
    return (lot.priority, lot.expires or NEVER, lot.created_at, lot.id)


def is_live(lot: Lot, now: datetime) -> bool:
    return lot.expires is None or lot.expires > now


def with_lot(lots: list[Lot], lot: Lot) -> list[Lot]:
    """`lots` (in spending order) with `lot` in its place."""
    placed = list(lots)
    bisect.insort(placed, lot, key=spending_order)
    return placed


def live_lots(lots: list[Lot], now: datetime) -> list[Lot]:
    """The lots (in spending order) with spendable tokens: the order debits draw them."""
    return [lot for lot in lots if lot.remaining > 0 and is_live(lot, now)]


def spendable(lots: list[Lot], now: datetime) -> int:
    return sum(lot.remaining for lot in lots if is_live(lot, now))


def draw(lots: list[Lot], tokens: int, now: datetime, *, hold: bool = False) -> Drawn | None:
    """Takes `tokens` from the live lots in spending order (with `hold`, into their `held`);
    None when the live lots have fewer. Stops at the last lot it needs: a debit of a
    balance with a thousand lots usually reads one."""
    drawn = list(lots)
    draws = []
    left = tokens
    for n, lot in enumerate(lots):
        if left == 0:
            break
        if lot.remaining <= 0 or not is_live(lot, now):
            continue
        take = min(left, lot.remaining)
        drawn[n] = lot.model_copy(
            update={"remaining": lot.remaining - take, "held": lot.held + take * hold}
        )
        draws.append(LotDraw(lot_id=lot.id, tokens=take))
        left -= take
    if left:
        return None
    return Drawn(lots=drawn, draws=draws)


def settle(lots: list[Lot], held: list[LotDraw], used: int) -> tuple[list[Lot], list[LotDraw]]:
    """A hold closes: `used` of its tokens are spent, from its draws in order, and the rest
    go back to the lots they came from. Returns the lots and the draws of what was spent."""
    by_id = {lot.id: lot for lot in lots}
    spent = []
    left = used
    for part in held:
        lot = by_id[part.lot_id]
        take = min(left, part.tokens)
        by_id[lot.id] = lot.model_copy(
            update={"held": lot.held - part.tokens, "remaining": lot.remaining + part.tokens - take}
        )
        if take:
            spent.append(LotDraw(lot_id=lot.id, tokens=take))
        left -= take
    return [by_id[lot.id] for lot in lots], spent


def lapse(lots: list[Lot], now: datetime) -> Drawn:
    """Expired lots lose their spendable tokens; held ones settle later."""
    return _close(lots, lambda lot: not is_live(lot, now))


def take_back(lots: list[Lot], order_id: str, now: datetime) -> Drawn:
    """A refund: the order's lots lose what is left of them and end `now`. Tokens a
    reservation holds stay the job's to spend; given back, they return to a lot that has
    ended, so they are not spendable again (the sweep expires them)."""
    closed = _close(lots, lambda lot: lot.order_id == order_id, ends=now)
    # An earlier end moves a lot in spending order.
    return Drawn(lots=sorted(closed.lots, key=spending_order), draws=closed.draws)


def _close(lots: list[Lot], which: Callable[[Lot], bool], ends: datetime | None = None) -> Drawn:
    """`which` lots lose their spendable tokens (and, with `ends`, end then at the latest);
    the others stay the same objects."""
    closed = []
    draws = []
    for lot in lots:
        update: dict[str, object] = {}
        if which(lot):
            if lot.remaining > 0:
                draws.append(LotDraw(lot_id=lot.id, tokens=lot.remaining))
                update["remaining"] = 0
            if ends is not None and (lot.expires is None or lot.expires > ends):
                update["expires"] = ends
        closed.append(lot.model_copy(update=update) if update else lot)
    return Drawn(lots=closed, draws=draws)


def prune(lots: list[Lot]) -> list[Lot]:
    """Lots that hold nothing any more leave the balance (their history is in the ledger)."""
    return [lot for lot in lots if lot.remaining > 0 or lot.held > 0]


@dataclass(frozen=True, slots=True)
class Totals:
    """What a balance stores beside its lots, from one pass over them."""

    tokens: int
    """The sum of `remaining`."""
    reserved: int
    """The sum of `held`."""
    next_expiry: datetime | None
    """When the sweep next has something to do: the soonest expiry of a lot with tokens."""


def totals(lots: list[Lot]) -> Totals:
    tokens = reserved = 0
    soonest: datetime | None = None
    for lot in lots:
        tokens += lot.remaining
        reserved += lot.held
        if lot.remaining > 0 and lot.expires and (soonest is None or lot.expires < soonest):
            soonest = lot.expires
    return Totals(tokens=tokens, reserved=reserved, next_expiry=soonest)
