"""Writes whose duplicates are expected: a retried or repeated write finds its document
already there, which is success, not failure."""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from beanie import Document
from pymongo.errors import BulkWriteError, DuplicateKeyError

from usercredits.models.collections import Collection, insert
from usercredits.services.errors import Impossible

T = TypeVar("T")

DUPLICATE_KEY = 11000


def duplicates_only(exc: BulkWriteError) -> list[dict[str, Any]]:
    """The write errors of `exc`, each a duplicate key; re-raises `exc` if any is not."""
    errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise exc
    return errors


async def insert_keyed(
    collection: Collection,
    document: Document,
    key: str | None,
    stored: Callable[[str], Awaitable[T | None]],
) -> T | None:
    """Inserts `document` into `collection`, unique by its idempotency `key`: None once it
    is in; if a concurrent request inserted one under the key first, that one (read by
    `stored`), for the caller to answer the retry with."""
    try:
        await insert(collection, document)
    except DuplicateKeyError:
        if key is None:
            raise
        raced = await stored(key)
        if raced is None:
            raise Impossible(f"key {key!r} clashed with a document that is gone") from None
        return raced
    return None
