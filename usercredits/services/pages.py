"""Pages of newest-first lists (the ledger, orders): how many items a caller may ask for
at once, and where the next page starts. A cursor is the id of the last item of the
previous page, so a page is one indexed range query however deep it is."""

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.asynchronous.collection import AsyncCollection

from usercredits.services.errors import InvalidInput, shown
from usercredits.values.numbers import is_whole


def page_size(first: object, most: int) -> int:
    """`first`, if it is a whole number from 1 to `most`."""
    if not is_whole(first) or not 1 <= first <= most:
        raise InvalidInput(f"first must be between 1 and {most}, got {shown(first)}")
    return first


def after_cursor(after: str | None) -> dict[str, Any]:
    """The filter of the items that come after the cursor `after` ({}: the first page)."""
    if after is None:
        return {}
    try:
        return {"_id": {"$lt": ObjectId(after)}}
    except (InvalidId, TypeError):
        raise InvalidInput(f"cursor {shown(after)} is not one this API returned") from None


async def newest_first(
    collection: AsyncCollection[Any],
    query: dict[str, Any],
    *,
    first: object,
    after: str | None,
    most: int,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of the documents `query` matches, newest first, after the cursor `after`:
    the page, and whether more follow (read as one more document than the page holds)."""
    size = page_size(first, most)
    cursor = collection.find({**query, **after_cursor(after)}).sort("_id", -1).limit(size + 1)
    found = [doc async for doc in cursor]
    return found[:size], len(found) > size
