"""Unordered bulk writes whose duplicates are expected: a retried or repeated write finds
its document already there, which is success, not failure."""

from typing import Any

from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


def duplicates_only(exc: BulkWriteError) -> list[dict[str, Any]]:
    """The write errors of `exc`, each a duplicate key; re-raises `exc` if any is not."""
    errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise exc
    return errors
