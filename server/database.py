"""The MongoDB client and Beanie's document registry."""

from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient

from models import ALL_DOCUMENTS


def connect(uri: str) -> AsyncMongoClient[Any]:
    """A client that returns aware UTC datetimes, as the services compare them with now."""
    return AsyncMongoClient(uri, tz_aware=True)


async def init_models(client: AsyncMongoClient[Any], database: str) -> None:
    """Binds the documents to `database` and creates their indexes (idempotent)."""
    await init_beanie(database=client[database], document_models=ALL_DOCUMENTS)
