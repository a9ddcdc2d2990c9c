"""Helpers shared by the tests: a settable clock, offer factories and the ledger invariant."""

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from usercredits.models import (
    Balance,
    LedgerEntryDocument,
    ReservationDocument,
    balance_id,
)
from usercredits.models.collections import Collections
from usercredits.server import children
from usercredits.services import Services
from usercredits.services.catalogue.offers import offer_spec
from usercredits.services.clock import Clock
from usercredits.services.wallets import Wallets
from usercredits.services.wallets.credits import Credit
from usercredits.services.wallets.movements import FaultHook, Movements
from usercredits.values import (
    Cycle,
    LedgerReason,
    Offer,
    OfferKind,
    OfferSpec,
    Price,
    ReservationStatus,
)

START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def other_wallets(
    collections: Collections, clock: Clock, faults: FaultHook | None = None
) -> Wallets:
    """Wallets of their own over the test's collections, as another process has."""
    movements = Movements(
        balances=collections.balances, ledger=collections.ledger, clock=clock, faults=faults
    )
    return Wallets(
        balances=collections.balances,
        ledger=collections.ledger,
        reservations=collections.reservations,
        movements=movements,
        clock=clock,
    )


def spec(**overrides: Any) -> OfferSpec:
    """A token-pack spec: 100 tokens in group 'pro' for 9.99 USD, monthly, changed by
    `overrides` and checked as an operator's would be (InvalidInput when it breaks a rule)."""
    stated = {
        "name": "Pro pack",
        "kind": OfferKind.TOKENS,
        "offer_group": "pro",
        "token_count": 100,
        "prices": [Price(currency="USD", minor_units=999)],
        "cycle": Cycle.MONTHLY,
    }
    return offer_spec({**stated, **overrides})


async def make_offer(services: Services, **overrides: Any) -> Offer:
    return await services.offers.create_offer(spec=spec(**overrides))


async def buy(services: Services, user_id: str, offer: Offer, quantity: int = 1) -> str:
    """Orders and pays (through the sandbox) an offer; returns the order id."""
    created = await services.orders.create_order(
        user_id=user_id, offer_id=str(offer.id), quantity=quantity
    )
    order = created.order
    if order.payment_intent_id is not None:
        services.payments.settle(order.payment_intent_id, succeed=True)  # type: ignore[attr-defined]
        await services.orders.refresh_order(order_id=str(order.id))
    return str(order.id)


async def assert_invariant(user_id: str, offer_group: str) -> Balance:
    """The wallet invariant of services/wallets/__init__.py, checked from the stored documents: the
    ledger (with the balance's `last` entries, which a crash may have kept from it) adds up
    to the lots' spendable tokens, the holds to their held tokens."""
    raw = await Balance.get_pymongo_collection().find_one({"_id": balance_id(user_id, offer_group)})
    assert raw is not None, f"no balance for {user_id}/{offer_group}"
    balance = Balance.model_validate(raw)
    stored = await LedgerEntryDocument.find(
        {"user_id": user_id, "offer_group": offer_group}
    ).to_list()
    by_seq = {e.seq: e for e in stored}
    for entry in raw["last"]:
        by_seq.setdefault(entry["seq"], LedgerEntryDocument.model_validate(entry))
    entries = [by_seq[seq] for seq in sorted(by_seq)]
    assert [e.seq for e in entries] == list(range(1, balance.seq + 1))
    running = 0
    for entry in entries:
        running += entry.released + entry.tokens
        assert entry.balance_after == running, f"entry {entry.id} breaks the running sum"
    assert running == balance.tokens, f"ledger sums to {running}, balance holds {balance.tokens}"
    assert balance.tokens == sum(lot.remaining for lot in balance.lots)
    assert balance.reserved == sum(lot.held for lot in balance.lots)
    assert balance.reserved == sum(hold.tokens for hold in balance.holds)
    assert all(lot.remaining >= 0 and lot.held >= 0 for lot in balance.lots)
    held = await ReservationDocument.find(
        {"user_id": user_id, "offer_group": offer_group, "status": ReservationStatus.HELD.value}
    ).to_list()
    assert {str(r.id) for r in held} <= {hold.id for hold in balance.holds}
    return balance


async def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every stored document, to show that a refused operation changed nothing."""
    from usercredits.models import ALL_DOCUMENTS

    result = {}
    for document in ALL_DOCUMENTS:
        collection = document.get_pymongo_collection()
        result[document.__name__] = [d async for d in collection.find({}).sort("_id")]
    return result


def order_credit(clock: FakeClock, order_id: str, tokens: int, days: int) -> Credit:
    """A purchase of `tokens` by u1 in `pro` (order `order_id`), valid for `days`."""
    return Credit(
        user_id="u1",
        offer_group="pro",
        tokens=tokens,
        starts=clock.now(),
        expires=clock.now() + timedelta(days=days),
        reason=LedgerReason.PURCHASE,
        idempotency_key=f"order:{order_id}",
        order_id=order_id,
    )


async def run_cli(*args: str, env: dict[str, str], seconds: float = 60) -> tuple[int, str, str]:
    """Runs `usercredits ARGS` in a process of its own: its exit code, output and errors."""
    return await run_process(
        sys.executable, "-m", "usercredits.server.cli", *args, env=env, seconds=seconds
    )


async def run_process(
    *command: str, env: dict[str, str], cwd: Path | None = None, seconds: float = 60
) -> tuple[int, str, str]:
    """Runs a command in a process of its own, stopped if it outlasts `seconds` (and when
    the test process dies): its exit code, output and errors."""
    process = await children.spawn(
        *command,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    finally:
        await children.stop(process)
    assert process.returncode is not None, "the process was stopped"
    return process.returncode, out.decode(), err.decode()
