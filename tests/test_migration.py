"""`usercredits migrate`: a database written before lots keeps every token, its held
reservations and its ledger's numbering; keys of older ledger entries are still recognised;
a second run changes nothing."""

from datetime import timedelta
from typing import Any

import pymongo
import pytest
from bson import ObjectId

from tests.support import FakeClock, assert_invariant, snapshot
from usercredits.models import Balance, LedgerEntryDocument, ReservationDocument
from usercredits.models.collections import Collections
from usercredits.services import Services
from usercredits.services.errors import KeyReused
from usercredits.services.migration import (
    LEGACY_LEDGER_INDEX,
    date_balances,
    key_ledger_entries,
    migrate_balances,
)
from usercredits.services.sweep import expire_due


async def old_balance(clock: FakeClock) -> dict[str, Any]:
    """A group as the version before lots stored it: 40 spendable, 10 held, 2 entries."""
    now = clock.now()
    expires = now + timedelta(days=30)
    entries = [(50, 50, "grant"), (-10, 40, "reservation")]
    for seq, (tokens, after, reason) in enumerate(entries, start=1):
        await LedgerEntryDocument.get_pymongo_collection().insert_one(
            {
                "user_id": "u1",
                "offer_group": "pro",
                "tokens": tokens,
                "balance_after": after,
                "seq": seq,
                "reason": reason,
                "idempotency_key": f"old-{seq}",
                "created_at": now,
            }
        )
    reservation = ObjectId()
    await ReservationDocument.get_pymongo_collection().insert_one(
        {
            "_id": reservation,
            "user_id": "u1",
            "offer_group": "pro",
            "tokens": 10,
            "status": "held",
            "expires_at": now + timedelta(hours=1),
            "idempotency_key": "job",
            "created_at": now,
        }
    )
    old = {
        "_id": ObjectId(),
        "user_id": "u1",
        "offer_group": "pro",
        "tokens": 40,
        "reserved": 10,
        "seq": 2,
        "starts": now,
        "expires": expires,
        "updated_at": now,
    }
    await Balance.get_pymongo_collection().insert_one(old)
    return {"reservation": str(reservation), "expires": expires}


async def test_migrate_keeps_every_token_and_runs_once(
    services: Services, clock: FakeClock, collections: Collections
) -> None:
    made = await old_balance(clock)
    before = await snapshot()
    planned = await migrate_balances(collections=collections, dry_run=True)
    assert [str(p) for p in planned] == [
        f"u1 / pro: one lot of 50 tokens (10 held) until {made['expires'].isoformat()}"
    ]
    assert await snapshot() == before

    assert len(await migrate_balances(collections=collections)) == 1
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved, balance.seq) == (40, 10, 2)
    [lot] = balance.lots
    assert (lot.tokens, lot.remaining, lot.held, lot.expires) == (50, 40, 10, made["expires"])
    assert await migrate_balances(collections=collections) == []

    wallets = services.wallets
    debit = await wallets.consume(user_id="u1", offer_group="pro", tokens=5, idempotency_key="n")
    assert (debit.seq, debit.balance_after) == (3, 35)
    spent = await wallets.commit_reservation(reservation_id=made["reservation"], tokens=4)
    assert spent.tokens == -4
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved) == (41, 0)


async def test_migrate_indexes_older_keys_so_their_retries_are_recognised(
    services: Services, clock: FakeClock, collections: Collections
) -> None:
    await old_balance(clock)
    await migrate_balances(collections=collections)
    ledger = LedgerEntryDocument.get_pymongo_collection()
    await ledger.create_index(
        [("user_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
        name=LEGACY_LEDGER_INDEX,
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    )
    before = await snapshot()
    assert await key_ledger_entries(collections=collections, dry_run=True) == 2
    assert await snapshot() == before

    assert await key_ledger_entries(collections=collections) == 2
    assert LEGACY_LEDGER_INDEX not in await ledger.index_information()
    assert await key_ledger_entries(collections=collections) == 0
    # "old-1" granted 50 tokens: reusing it for a debit is refused, and nothing moves.
    with pytest.raises(KeyReused):
        await services.wallets.consume(
            user_id="u1", offer_group="pro", tokens=5, idempotency_key="old-1"
        )
    assert (await assert_invariant("u1", "pro")).tokens == 40


async def test_migrate_dates_balances_so_the_sweep_finds_their_lapsed_lots(
    services: Services, clock: FakeClock, collections: Collections
) -> None:
    await services.wallets.grant(
        user_id="u1",
        offer_group="pro",
        tokens=7,
        idempotency_key="g",
        expires=clock.now() + timedelta(days=1),
    )
    undated = {"$unset": {"due_at": ""}}  # as an earlier version wrote them
    await collections.balances.update_many({}, undated)
    clock.advance(days=2)
    before = await snapshot()
    assert await date_balances(collections=collections, dry_run=True) == 1
    assert await snapshot() == before
    unseen = await expire_due(wallets=services.wallets, orders=services.orders, now=clock.now())
    assert unseen.groups_expired == 0  # the sweep finds balances by `due_at`

    assert await date_balances(collections=collections) == 1
    assert await date_balances(collections=collections) == 0
    swept = await expire_due(wallets=services.wallets, orders=services.orders, now=clock.now())
    assert (swept.groups_expired, swept.tokens_expired) == (1, 7)
    assert (await assert_invariant("u1", "pro")).tokens == 0
