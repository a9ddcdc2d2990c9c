"""Multi-document atomicity: run a unit of work in a MongoDB transaction, retried on the
transient write conflicts that concurrent writers to one document cause.

PyMongo's `with_transaction` already retries TransientTransactionError with jittered backoff
and retries an unknown commit result; a DomainError raised by the work aborts the
transaction and propagates unchanged.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

T = TypeVar("T")

Work = Callable[[AsyncClientSession], Awaitable[T]]


async def in_transaction(client: AsyncMongoClient[dict[str, object]], work: Work[T]) -> T:
    async with client.start_session() as session:
        return await session.with_transaction(work)
