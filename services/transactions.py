"""Multi-document atomicity: run a unit of work in a MongoDB transaction, retried on the
transient write conflicts that concurrent writers to one document cause, within a bounded
time.

PyMongo's `with_transaction` would retry for up to two minutes, which turns a database
outage into requests that hang; this loop gives up after `budget` seconds and lets the
error through, so callers fail fast and retry with their idempotency key. A commit whose
outcome is unknown is retried by re-running the work: every unit of work here is
idempotent (guarded updates, unique idempotency keys), so a second run after a commit that
did land changes nothing. A DomainError raised by the work aborts and propagates unchanged.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError

T = TypeVar("T")

Work = Callable[[AsyncClientSession], Awaitable[T]]

RETRYABLE = ("TransientTransactionError", "UnknownTransactionCommitResult")
DEFAULT_BUDGET_SECONDS = 15.0


async def in_transaction(
    client: AsyncMongoClient[Any], work: Work[T], *, budget: float = DEFAULT_BUDGET_SECONDS
) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    attempt = 0
    while True:
        try:
            async with client.start_session() as session:
                async with await session.start_transaction():
                    result = await work(session)
                return result
        except PyMongoError as exc:
            # No reachable server at all: waiting longer would only delay the failure.
            if isinstance(exc, ServerSelectionTimeoutError):
                raise
            if not any(exc.has_error_label(label) for label in RETRYABLE):
                raise
            if loop.time() >= deadline:
                raise
            attempt += 1
            # Jittered exponential backoff: writers conflicting on one balance spread out.
            await asyncio.sleep(random.random() * min(0.005 * 1.5**attempt, 0.25))
