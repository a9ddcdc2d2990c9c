"""`usercredits migrate`: a database written before lots keeps every token, its held
reservations and its ledger's numbering, and a second run changes nothing."""

from datetime import timedelta
from typing import Any

from bson import ObjectId

from models import Balance, LedgerEntry, Reservation
from services import Services
from services.migration import migrate_balances
from tests.support import FakeClock, assert_invariant, snapshot


async def old_balance(clock: FakeClock) -> dict[str, Any]:
    """A group as the version before lots stored it: 40 spendable, 10 held, 2 entries."""
    now = clock.now()
    expires = now + timedelta(days=30)
    entries = [(50, 50, "grant"), (-10, 40, "reservation")]
    for seq, (tokens, after, reason) in enumerate(entries, start=1):
        await LedgerEntry.get_pymongo_collection().insert_one(
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
    await Reservation.get_pymongo_collection().insert_one(
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
    services: Services, clock: FakeClock
) -> None:
    made = await old_balance(clock)
    before = await snapshot()
    planned = await migrate_balances(dry_run=True)
    assert [str(p) for p in planned] == [
        f"u1 / pro: one lot of 50 tokens (10 held) until {made['expires'].isoformat()}"
    ]
    assert await snapshot() == before

    assert len(await migrate_balances()) == 1
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved, balance.seq) == (40, 10, 2)
    [lot] = balance.lots
    assert (lot.tokens, lot.remaining, lot.held, lot.expires) == (50, 40, 10, made["expires"])
    assert await migrate_balances() == []

    wallets = services.wallets
    debit = await wallets.consume(user_id="u1", offer_group="pro", tokens=5, idempotency_key="n")
    assert (debit.seq, debit.balance_after) == (3, 35)
    spent = await wallets.commit_reservation(reservation_id=made["reservation"], tokens=4)
    assert spent.tokens == -4
    balance = await assert_invariant("u1", "pro")
    assert (balance.tokens, balance.reserved) == (41, 0)
