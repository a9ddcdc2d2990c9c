"""What every part of `Wallets` (services/wallets/__init__.py) shares: the movement primitive, the
clock, the input limits, the collections, the event hub told of refused debits, and two
rules more than one part applies."""

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, TypeVar

from usercredits.models.collections import Collection
from usercredits.services.clock import Clock
from usercredits.services.errors import KeyReused, shown
from usercredits.services.events import EventHub
from usercredits.services.limits import DEFAULT_INPUT_LIMITS, InputLimits
from usercredits.services.sharding import ONE_SERVER, UserScope
from usercredits.services.wallets.movements import Movements
from usercredits.values import LedgerEntry

SWEEP_BATCH = 64
"""Balances the sweep moves at once (the movement primitive's batch)."""

T = TypeVar("T")


class WalletBase:
    """The state the parts of `Wallets` work on; each part adds its operations."""

    def __init__(
        self,
        *,
        balances: Collection,
        ledger: Collection,
        reservations: Collection,
        movements: Movements,
        clock: Clock,
        limits: InputLimits = DEFAULT_INPUT_LIMITS,
        scope: UserScope = ONE_SERVER,
        events: EventHub | None = None,
    ) -> None:
        self._movements = movements
        self._events = events
        self._scope = scope
        self._clock = clock
        self._limits = limits
        self._balances = balances
        self._ledger = ledger
        self._reservations = reservations


async def batched(
    documents: AsyncIterable[dict[str, Any]], handle: Callable[[dict[str, Any]], Awaitable[T]]
) -> list[T]:
    """`handle` of every document, SWEEP_BATCH at a time concurrently: the movement
    primitive then writes a batch's balances in one command of each kind, where one at a
    time would cost each balance its own commands."""
    results: list[T] = []
    batch: list[dict[str, Any]] = []
    async for document in documents:
        batch.append(document)
        if len(batch) == SWEEP_BATCH:
            results += await asyncio.gather(*map(handle, batch))
            batch = []
    results += await asyncio.gather(*map(handle, batch))
    return results


def same_request(entry: LedgerEntry, key: str, offer_group: str, tokens: int) -> LedgerEntry:
    """A replayed key must repeat the request that first used it."""
    if entry.offer_group != offer_group or entry.tokens != tokens:
        raise KeyReused(
            f"idempotency key {shown(key)} was used for {entry.tokens} tokens in "
            f"{shown(entry.offer_group)}; a retry must repeat the same request"
        )
    return entry
