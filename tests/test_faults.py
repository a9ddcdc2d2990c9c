"""Faults with money in flight: a flood of duplicated, reordered webhooks, and a server
killed (SIGKILL) in the middle of purchases and debits. Afterwards each order is credited
exactly once, the ledger agrees with every balance, and reconciliation finishes what the
crash left half done."""

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from tests.api import Api, token
from tests.conftest import SpawnServer
from tests.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, event
from tests.shop import ADMIN, BUY, Shop
from tests.support import assert_invariant
from tests.waits import until
from usercredits.models import LedgerEntryDocument, OrderDocument
from usercredits.server.database import connect
from usercredits.server.embedded import EmbeddedDatabase
from usercredits.values import OrderStatus

pytestmark = pytest.mark.reliability

CONSUME = """mutation C($k: String!) { consumeTokens(input: {offerGroup: "pro", tokens: 1,
  idempotencyKey: $k}) { id } }"""
OFFER = """mutation { upsertOffer(input: {name: "Pro", kind: TOKENS, offerGroup: "pro",
  tokenCount: 10, prices: [{amount: "5", currency: "USD"}], cycle: ONCE}) { id } }"""


async def test_webhook_flood_credits_each_order_once(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    offer = await shop.offer()
    users = [f"buyer-{i}" for i in range(20)]
    orders: list[tuple[str, str]] = []
    for user in users:
        for _ in range(5):
            data = await shop.api.data(BUY, {"input": {"offerId": offer}}, as_=token(user))
            orders.append((user, data["createOrder"]["order"]["id"]))
    deliveries: list[bytes] = []
    for _, order_id in orders:
        intent = shop.fake.intent_for(order_id)
        declined = {
            **intent,
            "status": "requires_payment_method",
            "last_payment_error": {"message": "Your card was declined."},
        }
        failed = event("payment_intent.payment_failed", declined)
        shop.fake.succeed(intent)
        succeeded = event("payment_intent.succeeded", intent)
        late_failure = event("payment_intent.payment_failed", declined)
        # Each success arrives three times (one id), a failure before and one after it.
        deliveries += [failed, succeeded, succeeded, succeeded, late_failure]
    deliveries += deliveries[: 1000 - len(deliveries)]  # replays, up to 1,000 deliveries
    random.Random(7).shuffle(deliveries)
    gate = asyncio.Semaphore(50)

    async def deliver(body: bytes) -> int:
        async with gate:
            status, _ = await shop.deliver(body)
            return status

    statuses = await asyncio.gather(*(deliver(body) for body in deliveries))
    assert set(statuses) == {200}
    paid = await OrderDocument.find({"status": OrderStatus.PAID.value}).count()
    purchases = await LedgerEntryDocument.find({"reason": "purchase"}).count()
    assert paid == purchases == len(orders)
    for user in users:
        assert (await assert_invariant(user, "pro")).tokens == 5 * 100
    with capsys.disabled():
        print(
            f"\nwebhook flood: {len(deliveries)} signed deliveries (duplicates, failures "
            f"before and after success, shuffled, 50 at a time) for {len(orders)} orders: "
            f"{paid} paid, {purchases} credits, every balance = its ledger: nothing doubled"
        )


async def test_sigkill_mid_purchase_and_debit_then_reconcile(
    tmp_path: Path,
    spawn_server: SpawnServer,
    http: aiohttp.ClientSession,
    fake_stripe: tuple[FakeStripe, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No movement holds a transaction, so the killed server leaves no lock behind: every
    key replayed right after the restart answers at once, without an error. A database of
    its own keeps the crash away from other tests."""
    fake, api_base = fake_stripe
    database = EmbeddedDatabase(tmp_path)
    uri = await database.start()
    env = {
        "USERCREDITS_MONGODB_URI": uri,
        "USERCREDITS_DATABASE": "crash",
        "USERCREDITS_STRIPE_SECRET_KEY": SECRET_KEY,
        "USERCREDITS_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "USERCREDITS_STRIPE_API_BASE": api_base,
        "USERCREDITS_SWEEP_INTERVAL_SECONDS": "0",
    }
    client = connect(uri)
    try:
        async with asyncio.timeout(240):
            await crash_and_recover(spawn_server, http, fake, env, client["crash"], capsys)
    finally:
        await client.close()
        await database.stop()


async def crash_and_recover(
    spawn_server: SpawnServer,
    http: aiohttp.ClientSession,
    fake: FakeStripe,
    env: dict[str, str],
    db: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = await spawn_server(**env)
    api = Api(http, f"{first.url}/graphql")
    offer = (await api.data(OFFER, as_=ADMIN))["upsertOffer"]["id"]
    users = [f"crash-{i}" for i in range(5)]
    for user in users:
        await api.data(
            """mutation G($u: ID!) { grantTokens(input: {userId: $u, offerGroup: "pro",
               tokens: 1000, idempotencyKey: "seed"}) { id } }""",
            {"u": user},
            as_=ADMIN,
        )
    attempted: dict[str, set[str]] = {user: set() for user in users}

    async def load(user: str) -> None:
        """Buys and debits until the server dies under it."""
        caller = token(user)
        for i in range(10_000):
            key = f"{user}-{i}"
            attempted[user].add(key)
            try:
                await api.call(CONSUME, {"k": key}, as_=caller)
                if i % 5 == 0:
                    created = await api.call(BUY, {"input": {"offerId": offer}}, as_=caller)
                    order_id = created["data"]["createOrder"]["order"]["id"]
                    fake.succeed(fake.intent_for(order_id))  # paid; the webhook never comes
            except (aiohttp.ClientError, AssertionError, TypeError):
                return

    tasks = [asyncio.create_task(load(user)) for user in users]
    # Killed once the load is well under way: each user has sent debits and purchases.
    await until(
        lambda: all(len(keys) >= 25 for keys in attempted.values()),
        seconds=60,
        what="25 debits sent by each user",
    )
    first.process.send_signal(signal.SIGKILL)
    await first.process.wait()
    await asyncio.gather(*tasks)

    # A new instance whose sweep reconciles every pending order at once.
    second = await spawn_server(
        **{
            **env,
            "USERCREDITS_SWEEP_INTERVAL_SECONDS": "1",
            "USERCREDITS_PENDING_RECONCILE_SECONDS": "0",
        }
    )
    api = Api(http, f"{second.url}/graphql")
    succeeded = {
        i["metadata"]["order_id"] for i in fake.intents.values() if i["status"] == "succeeded"
    }
    # Clients retry every debit they had started, with the same keys: each answers at once.
    restarted = asyncio.get_running_loop().time()
    first_answer = None
    for user, keys in attempted.items():
        for key in sorted(keys):
            body = await api.call(CONSUME, {"k": key}, as_=token(user))
            assert not body.get("errors"), (key, body)
            if first_answer is None:
                first_answer = asyncio.get_running_loop().time() - restarted
    assert first_answer is not None and first_answer < 2.0

    # The second server reconciles on its own schedule; there is no event to wait on.
    # (Orders whose intents never succeeded rightly stay pending.)
    async def reconciled() -> bool:
        pending = {"_id": {"$in": [ObjectId(i) for i in succeeded]}, "status": "pending"}
        return await db["orders"].count_documents(pending) == 0

    await until(reconciled, seconds=120, every=0.1, what="every paid order reconciled")

    paid = {str(o["_id"]) async for o in db["orders"].find({"status": "paid"})}
    assert succeeded <= paid
    purchases = [e async for e in db["ledger"].find({"reason": "purchase"})]
    assert sorted(e["order_id"] for e in purchases) == sorted(paid)  # once each
    for user in users:
        balance = await db["wallet_balances"].find_one({"user_id": user})
        stored = {e["seq"]: e async for e in db["ledger"].find({"user_id": user})}
        entries = list(({e["seq"]: e for e in balance["last"]} | stored).values())
        debits = sum(1 for e in entries if e["reason"] == "consumption")
        assert debits == len(attempted[user])
        assert balance["tokens"] == sum(e["tokens"] for e in entries)
        credited = 10 * await db["orders"].count_documents({"user_id": user, "status": "paid"})
        assert balance["tokens"] == 1000 + credited - debits
    with capsys.disabled():
        print(
            f"\ncrash: SIGKILL during load; {sum(map(len, attempted.values()))} debit keys "
            f"replayed after restart without an error (the first in {first_answer:.2f}s), "
            f"{len(succeeded)} paid intents whose webhooks never came reconciled: each "
            f"credited once, every debit once, ledger = balance"
        )
