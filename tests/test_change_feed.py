"""The change feed survives a broken change stream: when the database goes away and comes
back, it resumes from its resume token and delivers every event that committed after it,
once each."""

import asyncio
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from models import LedgerEntry
from server.changes import ChangeFeed, running_feed
from server.database import connect, init_models
from server.embedded import EmbeddedDatabase
from services import Services, build_services
from services.events import BalanceChanged, EventHub, Topic
from services.payments import SandboxPaymentClient
from tests.support import FakeClock


async def next_event(events: Any) -> BalanceChanged:
    # Generous: after an outage the driver rediscovers the server on its own schedule.
    event = await asyncio.wait_for(anext(events), 30)
    assert isinstance(event, BalanceChanged)
    return event


async def test_the_feed_resumes_after_the_stream_breaks(
    tmp_path: Path, mongo: AsyncMongoClient[Any], database_name: str
) -> None:
    database = EmbeddedDatabase(tmp_path)
    async with database as uri:
        client = connect(uri)
        await init_models(client, "feed")
        services: Services = build_services(
            client=client,
            payments=SandboxPaymentClient(),
            clock=FakeClock(),
            default_currency="USD",
        )
        hub = EventHub()
        events = hub.listen(Topic.BALANCE, "u1")
        async with running_feed(ChangeFeed(database=client["feed"], events=hub)):
            wallets = services.wallets
            await wallets.grant(user_id="u1", offer_group="g", tokens=10, idempotency_key="g")
            assert (await next_event(events)).tokens == 10
            # The stream breaks: the server stops, then comes back on the same data and port.
            await database.stop()
            await asyncio.sleep(1)
            await database.start()
            for i in range(3):
                await wallets.consume(
                    user_id="u1", offer_group="g", tokens=1, idempotency_key=f"k{i}"
                )
            received = [(await next_event(events)).tokens for _ in range(3)]
            assert received == [9, 8, 7]
            assert await LedgerEntry.count() == 4
            await events.aclose()
        await client.close()
    # Give the documents back to the suite's database.
    await init_models(mongo, database_name)
