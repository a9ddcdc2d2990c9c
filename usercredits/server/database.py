"""The MongoDB client and Beanie's document registry."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from usercredits.models import ALL_DOCUMENTS, RETIRED_INDEXES
from usercredits.server.embedded import EmbeddedDatabase
from usercredits.server.settings import Settings

CLOSE_SECONDS = 1.0
"""How long closing a client may spend ending its sessions on the server."""


def connect(uri: str, *, timeout_ms: int = 5000) -> AsyncMongoClient[Any]:
    """A client that returns aware UTC datetimes (the services compare them with now) and
    gives up on an unreachable server after `timeout_ms`, so requests fail fast during an
    outage instead of hanging."""
    return AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )


async def init_models(client: AsyncMongoClient[Any], database: str) -> None:
    """Binds the documents to `database` and creates their indexes (idempotent), then drops
    the indexes this version replaced, once their replacements exist (instances starting
    together may each try: an index already gone is no error)."""
    await init_beanie(database=client[database], document_models=ALL_DOCUMENTS)
    for document, names in RETIRED_INDEXES.items():
        for name in names:
            with suppress(OperationFailure):
                await client[database][document.get_collection_name()].drop_index(name)


async def is_sharded(client: AsyncMongoClient[Any]) -> bool:
    """Whether the client talks to a sharded cluster: mongos answers `hello` with the
    message "isdbgrid"."""
    hello = await client.admin.command("hello")
    return hello.get("msg") == "isdbgrid"


async def close(client: AsyncMongoClient[Any]) -> None:
    """Closes `client` in bounded time. Closing first ends the client's pooled sessions on
    the server, which waits out the whole server selection timeout when the server is
    gone; those sessions have left the pool by then, so a second close only closes the
    connections and monitors. A server that stops while its database is down stops now."""
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            await client.close()
    except TimeoutError:
        await client.close()


@asynccontextmanager
async def database_uri(settings: Settings) -> AsyncIterator[str]:
    """The configured MongoDB's URI, or that of an embedded SecantusDB started for the
    block (and stopped after it)."""
    if settings.mongodb_uri is not None:
        yield settings.mongodb_uri
        return
    storage = settings.data_dir.resolve() / "db"
    async with EmbeddedDatabase(storage, join_seconds=settings.embedded_join_seconds) as uri:
        yield uri


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[AsyncMongoClient[Any]]:
    """A client of the configured MongoDB, or of an embedded SecantusDB started for the
    block (and stopped after it, last)."""
    async with database_uri(settings) as uri:
        client = connect(uri, timeout_ms=settings.database_timeout_ms)
        try:
            await init_models(client, settings.database)
            yield client
        finally:
            await close(client)
