"""Fast set-up: wallets, ledger entries and offers written straight into their collections.

Going through the API would make set-up the slowest part of the bench (200 k ledger entries
are 200 k transactions); `insert_many` in batches takes seconds. Every document is shaped
like its model (models/), and the first of each kind is validated by the model, so a
change of the models breaks the seeding loudly instead of benchmarking odd documents.
"""

from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient

from models import Balance, LedgerEntry, LedgerReason, Offer

GROUP = "bench"
"""The offer group every benchmark wallet holds its tokens in."""

RAW_BALANCES = "bench_raw_balances"
"""The raw baseline's copy of `wallet_balances`: same documents, same indexes."""

BATCH = 10_000


def users(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def _balance(user_id: str, tokens: int, now: datetime) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "offer_group": GROUP,
        "tokens": tokens,
        "reserved": 0,
        "seq": 1,
        "starts": now,
        "expires": None,
        "updated_at": now,
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
        "created_at": now,
    }


async def wallets(
    client: AsyncMongoClient[Any], database: str, user_ids: list[str], tokens: int
) -> None:
    """Gives each user `tokens` in GROUP: a balance and its grant entry (the invariant
    holds), and the same balances in the raw baseline's collection."""
    now = datetime.now(UTC)
    balances = [_balance(u, tokens, now) for u in user_ids]
    grants = [
        _entry(
            u,
            tokens=tokens,
            balance_after=tokens,
            seq=1,
            reason=LedgerReason.GRANT,
            key=f"seed-grant-{u}",
            now=now,
        )
        for u in user_ids
    ]
    Balance.model_validate(balances[0])
    LedgerEntry.model_validate(grants[0])
    db = client[database]
    raw = db[RAW_BALANCES]
    await raw.create_indexes(Balance.Settings.indexes)
    for start in range(0, len(user_ids), BATCH):
        await db[Balance.Settings.name].insert_many(balances[start : start + BATCH])
        await db[LedgerEntry.Settings.name].insert_many(grants[start : start + BATCH])
        await raw.insert_many([dict(b) for b in balances[start : start + BATCH]])


async def ledger_entries(
    client: AsyncMongoClient[Any], database: str, user_ids: list[str], count: int
) -> None:
    """`count` consumption entries spread over `user_ids` (history that reads never touch,
    but that every index of the ledger carries)."""
    now = datetime.now(UTC)
    collection = client[database][LedgerEntry.Settings.name]
    for start in range(0, count, BATCH):
        batch = [
            _entry(
                user_ids[i % len(user_ids)],
                tokens=-1,
                balance_after=1_000_000,
                seq=2 + i // len(user_ids),
                reason=LedgerReason.CONSUMPTION,
                key=f"seed-{i}",
                now=now,
            )
            for i in range(start, min(count, start + BATCH))
        ]
        if start == 0:
            LedgerEntry.model_validate(batch[0])
        await collection.insert_many(batch, ordered=False)


async def offers(client: AsyncMongoClient[Any], database: str, groups: list[str]) -> None:
    """One public offer per item of `groups` (repeat a group for several offers in it)."""
    now = datetime.now(UTC)
    documents = [
        {
            "name": f"Offer {i}",
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
    Offer.model_validate(documents[0])
    collection = client[database][Offer.Settings.name]
    for start in range(0, len(documents), BATCH):
        await collection.insert_many(documents[start : start + BATCH], ordered=False)
