"""The change feed survives a broken change stream: when the database goes away and comes
back, it resumes from its resume token and delivers every event that committed after it,
once each."""

import asyncio
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from tests.support import FakeClock
from tests.waits import until
from usercredits.models import LedgerEntryDocument
from usercredits.server.changes import ChangeFeed, running_feed
from usercredits.server.database import connect, init_models
from usercredits.server.embedded import EmbeddedDatabase
from usercredits.services import build_services
from usercredits.services.events import EventHub
from usercredits.services.payments import SandboxPaymentClient


async def test_the_feed_resumes_after_the_stream_breaks(
    tmp_path: Path, mongo: AsyncMongoClient[Any], database_name: str
) -> None:
    database = EmbeddedDatabase(tmp_path)
    try:
        async with database as uri:
            client = connect(uri)
            await init_models(client, "feed")
            wallets = build_services(
                database=client["feed"],
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
                # Generous waits: the driver rediscovers a restarted server on its own schedule.
                await until(lambda: hub.subscriber_count == 1, seconds=30)
                await wallets.grant(user_id="u1", offer_group="g", tokens=10, idempotency_key="g")
                await until(lambda: balances == [10], seconds=30)
                # The stream breaks: the server stops, then comes back on the same data.
                await database.stop()
                await asyncio.sleep(1)
                await database.start()
                for i in range(3):
                    await wallets.consume(
                        user_id="u1", offer_group="g", tokens=1, idempotency_key=f"k{i}"
                    )
                # A marker debit: a duplicate of an event before it would arrive before it.
                await wallets.consume(
                    user_id="u1", offer_group="g", tokens=4, idempotency_key="marker"
                )
                await until(lambda: 3 in balances, seconds=30, what="the marker's event")
                assert balances == [10, 9, 8, 7, 3]
                assert await LedgerEntryDocument.count() == 5
                reader.cancel()
            await client.close()
    finally:
        # Give the documents back to the suite's database, whatever happened above.
        await init_models(mongo, database_name)
