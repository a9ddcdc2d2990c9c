"""Fast set-up: wallets, ledger entries and offers written straight into their collections.

Going through the API would make set-up the slowest part of the bench (200 k ledger entries
are 200 k transactions); `insert_many` in batches takes seconds. Every document is shaped
like its model (models/), and the first of each kind is validated by the model, so a
change of the models breaks the seeding loudly instead of benchmarking odd documents.
"""

from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient

from usercredits.models import (
    Balance,
    LedgerEntryDocument,
    OfferDocument,
    balance_id,
    pack_lots,
    user_key,
)
from usercredits.services.wallets.lots import totals
from usercredits.values import LedgerReason, Lot, LotSource

GROUP = "bench"
"""The offer group every benchmark wallet holds its tokens in."""

MINIMAL = "bench_minimal"
"""The raw baselines' collection: the database's minimal documents `{_id, tokens}`, with
only the `_id` index. A baseline must be the database's own floor, not a copy of our
documents: a ratio against our own design could not show what that design costs."""

BATCH = 10_000


def users(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def _lots(
    user_id: str, tokens: int, now: datetime, count: int, expires: datetime | None
) -> list[Lot]:
    """`tokens` spread over `count` lots that end at `expires` (None: never); the first lot
    holds the remainder."""
    share, rest = divmod(tokens, count)
    return [
        Lot(
            id=f"{user_id}-lot-{n:05d}",
            source=LotSource.GRANT,
            tokens=share + rest * (n == 0),
            remaining=share + rest * (n == 0),
            starts=now,
            expires=expires,
            created_at=now,
        )
        for n in range(count)
    ]


def _balance(user_id: str, lots: list[Lot], now: datetime) -> dict[str, Any]:
    """A balance as movements leave it after one grant entry per lot."""
    return {
        "_id": balance_id(user_id, GROUP),
        "user_id": user_id,
        "offer_group": GROUP,
        "tokens": sum(lot.remaining for lot in lots),
        "reserved": 0,
        "seq": len(lots),
        "lots": pack_lots(lots),
        "holds": [],
        "starts": now,
        "next_expiry": totals(lots).next_expiry,
        "last": [],
        "unflushed": False,
        "updated_at": now,
        "due_at": totals(lots).next_expiry,
    }


def _entry(
    user_id: str,
    *,
    tokens: int,
    balance_after: int,
    seq: int,
    reason: LedgerReason,
    key: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "offer_group": GROUP,
        "tokens": tokens,
        "balance_after": balance_after,
        "seq": seq,
        "reason": reason.value,
        "note": None,
        "order_id": None,
        "reservation_id": None,
        "idempotency_key": key,
        "user_key": user_key(user_id, key),
        "lots": [],
        "created_at": now,
    }


async def wallets(
    client: AsyncMongoClient[Any],
    database: str,
    user_ids: list[str],
    tokens: int,
    *,
    lots: int = 1,
    expires: datetime | None = None,
) -> None:
    """Gives each user `tokens` in GROUP over `lots` lots: a balance and its grant entries
    (the invariant holds)."""
    now = datetime.now(UTC)
    db = client[database]
    for start in range(0, len(user_ids), max(1, BATCH // lots)):
        chunk = user_ids[start : start + max(1, BATCH // lots)]
        made = {u: _lots(u, tokens, now, lots, expires) for u in chunk}
        balances = [_balance(u, user_lots, now) for u, user_lots in made.items()]
        grants = [
            _entry(
                user,
                tokens=lot.tokens,
                balance_after=sum(x.tokens for x in user_lots[: n + 1]),
                seq=n + 1,
                reason=LedgerReason.GRANT,
                key=f"seed-grant-{lot.id}",
                now=now,
            )
            for user, user_lots in made.items()
            for n, lot in enumerate(user_lots)
        ]
        if start == 0:
            Balance.model_validate(balances[0])
            LedgerEntryDocument.model_validate(grants[0])
        await db[Balance.Settings.name].insert_many(balances)
        await db[LedgerEntryDocument.Settings.name].insert_many(grants)


async def minimal(client: AsyncMongoClient[Any], database: str, count: int, tokens: int) -> None:
    """`count` minimal documents `{_id: 0..count-1, tokens}` in MINIMAL."""
    for start in range(0, count, BATCH):
        documents = [{"_id": n, "tokens": tokens} for n in range(start, min(count, start + BATCH))]
        await client[database][MINIMAL].insert_many(documents)


async def ledger_entries(
    client: AsyncMongoClient[Any], database: str, user_ids: list[str], count: int, first: int = 0
) -> None:
    """`count` consumption entries spread over `user_ids` (history that reads never touch,
    but that every index of the ledger carries), numbered from `first` (a later call
    continues where an earlier one stopped)."""
    now = datetime.now(UTC)
    collection = client[database][LedgerEntryDocument.Settings.name]
    for start in range(first, first + count, BATCH):
        batch = [
            _entry(
                user_ids[i % len(user_ids)],
                tokens=-1,
                balance_after=1_000_000,
                seq=1_000_000 + i // len(user_ids),
                reason=LedgerReason.CONSUMPTION,
                key=f"seed-{i}",
                now=now,
            )
            for i in range(start, min(first + count, start + BATCH))
        ]
        if start == first:
            LedgerEntryDocument.model_validate(batch[0])
        await collection.insert_many(batch, ordered=False)


async def offers(client: AsyncMongoClient[Any], database: str, groups: list[str]) -> None:
    """One public offer per item of `groups` (repeat a group for several offers in it)."""
    now = datetime.now(UTC)
    documents = [
        {
            "name": f"OfferDocument {i}",
            "kind": "tokens",
            "offer_group": group,
            "token_count": 100,
            "prices": [
                {"currency": "USD", "minor_units": 999},
                {"currency": "EUR", "minor_units": 899},
            ],
            "cycle": "monthly",
            "custom_cycle_seconds": None,
            "append_date": False,
            "quantity_limit": None,
            "tags": ["bench"],
            "popular": i % 10 == 0,
            "overriding_key": None,
            "weight": i % 7,
            "unlocked_by": [],
            "combined_items": [],
            "archived": False,
            "created_at": now,
        }
        for i, group in enumerate(groups)
    ]
    OfferDocument.model_validate(documents[0])
    collection = client[database][OfferDocument.Settings.name]
    for start in range(0, len(documents), BATCH):
        await collection.insert_many(documents[start : start + BATCH], ordered=False)
