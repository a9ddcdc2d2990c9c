"""The change feed survives a broken change stream: when the database goes away and comes
back, it resumes from its resume token and delivers every event that committed after it,
once each."""

import asyncio
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from tests.support import FakeClock
from usercredits.models import LedgerEntryDocument
from usercredits.server.changes import ChangeFeed, running_feed
from usercredits.server.database import connect, init_models
from usercredits.server.embedded import EmbeddedDatabase
from usercredits.services import build_services
from usercredits.services.events import EventHub
from usercredits.services.payments import SandboxPaymentClient


async def until(condition: Any, seconds: float = 30) -> None:
    """Waits for `condition()`; generous, as the driver rediscovers a restarted server on its
    own schedule."""
    async with asyncio.timeout(seconds):
        # The conditions are other tasks' state (hub, subscriber), which offer no event.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_the_feed_resumes_after_the_stream_breaks(
    tmp_path: Path, mongo: AsyncMongoClient[Any], database_name: str
) -> None:
    database = EmbeddedDatabase(tmp_path)
    try:
        async with database as uri:
            client = connect(uri)
            await init_models(client, "feed")
            wallets = build_services(
                payments=SandboxPaymentClient(),
                clock=FakeClock(),
                default_currency="USD",
            ).wallets
            hub = EventHub()
            balances: list[int] = []

            async def subscriber() -> None:
                async for event in hub.balance_events("u1"):
                    balances.append(event.tokens)

            async with running_feed(ChangeFeed(database=client["feed"], events=hub)):
                reader = asyncio.create_task(subscriber())
                await until(lambda: hub.subscriber_count == 1)
                await wallets.grant(user_id="u1", offer_group="g", tokens=10, idempotency_key="g")
                await until(lambda: balances == [10])
                # The stream breaks: the server stops, then comes back on the same data.
                await database.stop()
                await asyncio.sleep(1)
                await database.start()
                for i in range(3):
                    await wallets.consume(
                        user_id="u1", offer_group="g", tokens=1, idempotency_key=f"k{i}"
                    )
                await until(lambda: len(balances) >= 4)
                await asyncio.sleep(0.3)  # a duplicate would arrive now
                assert balances == [10, 9, 8, 7]
                assert await LedgerEntryDocument.count() == 4
                reader.cancel()
            await client.close()
    finally:
        # Give the documents back to the suite's database, whatever happened above.
        await init_models(mongo, database_name)
