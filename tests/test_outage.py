"""A database outage under load: requests fail fast with a retryable error and /readyz says
not ready; once the database is back, clients retrying with their idempotency keys get
exactly-once effects, and no token is lost or doubled."""

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api import Api, token
from tests.conftest import SpawnServer
from tests.waits import until
from usercredits.server.database import connect
from usercredits.server.embedded import EmbeddedDatabase
from usercredits.services.identity.access import Role

pytestmark = pytest.mark.reliability

ADMIN = token("admin-1", Role.ADMIN)
USERS = [f"user-{i}" for i in range(4)]
CONSUME = """mutation C($key: String!) { consumeTokens(input: {offerGroup: "pro", tokens: 1,
  idempotencyKey: $key}) { id balanceAfter } }"""
OUTAGE_SECONDS = 3.0
TIMEOUT_MS = 1000


async def ledger_holds(database: Any, user: str) -> tuple[int, int, int]:
    """The balance, the sum of the ledger and the number of consumption entries."""
    balance = await database["wallet_balances"].find_one({"user_id": user, "offer_group": "pro"})
    entries = [e async for e in database["ledger"].find({"user_id": user})]
    consumed = sum(1 for e in entries if e["reason"] == "consumption")
    return balance["tokens"], sum(e["tokens"] for e in entries), consumed


async def test_outage_under_load_loses_and_doubles_nothing(
    tmp_path: Path,
    spawn_server: SpawnServer,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = EmbeddedDatabase(tmp_path)
    uri = await database.start()
    try:
        server = await spawn_server(
            USERCREDITS_MONGODB_URI=uri,
            USERCREDITS_DATABASE="outage",
            USERCREDITS_DATABASE_TIMEOUT_MS=str(TIMEOUT_MS),
        )
        api = Api(http, f"{server.url}/graphql")

        async def ready(status: int) -> bool:
            async with http.get(f"{server.url}/readyz") as response:
                return response.status == status

        for user in USERS:
            await api.data(
                """mutation G($u: ID!) { grantTokens(input: {userId: $u, offerGroup: "pro",
                   tokens: 100000, idempotencyKey: "seed"}) { id } }""",
                {"u": user},
                as_=ADMIN,
            )

        keys_done: dict[str, set[str]] = {user: set() for user in USERS}
        done_by: Counter[tuple[str, int]] = Counter()
        """Keys each client got an answer for."""
        failures: list[float] = []
        stop = asyncio.Event()

        async def client(user: str, number: int) -> None:
            """Consumes with fresh keys; a failed request is retried with the same key."""
            caller = token(user)
            sequence = 0
            while not stop.is_set():
                key = f"{user}-{number}-{sequence}"
                while True:
                    started = time.monotonic()
                    body = await api.call(CONSUME, {"key": key}, as_=caller)
                    if not body.get("errors"):
                        break
                    error = body["errors"][0]
                    assert error["extensions"]["code"] == "INTERNAL", error
                    assert error["extensions"]["retryable"] is True, error
                    failures.append(time.monotonic() - started)
                    await asyncio.sleep(0.2)
                keys_done[user].add(key)
                done_by[user, number] += 1
                sequence += 1
                await asyncio.sleep(random.random() * 0.02)

        clients = [asyncio.create_task(client(u, n)) for u in USERS for n in range(3)]
        numbers = [(u, n) for u in USERS for n in range(3)]

        def each_client_got(answers: dict[tuple[str, int], int]) -> bool:
            return all(done_by[c] >= answers.get(c, 0) + 5 for c in numbers)

        await until(lambda: each_client_got({}), seconds=30, what="the load under way")
        await database.stop()
        await until(lambda: ready(503), seconds=15, every=0.1, what="/readyz: not ready")
        # The database stays down longer than a request's timeout: requests must fail fast.
        await asyncio.sleep(OUTAGE_SECONDS)
        await database.start()
        # The server reconnects, and each client's pending key, then a few more, succeed.
        restarted = dict(done_by)
        await until(lambda: each_client_got(restarted), seconds=60, what="every client retried")
        await until(lambda: ready(200), seconds=15, every=0.1, what="/readyz: ready again")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), 60)

        assert failures, "the outage was not felt by any request"
        # Each failure came back within the set timeout (plus the server's own work).
        assert max(failures) < TIMEOUT_MS / 1000 * 4 + 2
        client_db = connect(uri)
        try:
            for user in USERS:
                tokens, ledger_sum, consumed = await ledger_holds(client_db["outage"], user)
                assert ledger_sum == tokens
                assert consumed == len(keys_done[user])
                assert tokens == 100000 - len(keys_done[user])
        finally:
            await client_db.close()
        with capsys.disabled():
            total = sum(len(k) for k in keys_done.values())
            print(
                f"\noutage: {total} debits by {len(clients)} clients, database down "
                f"{OUTAGE_SECONDS}s, {len(failures)} requests failed fast (slowest "
                f"{max(failures):.2f}s), /readyz 503 during and 200 "
                f"after; every key debited exactly once, ledger = balance: nothing lost"
            )
    finally:
        await database.stop()
