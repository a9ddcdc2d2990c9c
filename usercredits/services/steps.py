"""Running the sweep so that nothing one document holds can end it: every step runs on its
own, and the steps that go through documents one at a time handle each on its own. What
raises is logged with what it was, counted, and left for the next run; the sweep goes on
with the rest (a document the code cannot handle would otherwise stop every run on every
instance, and with it expiry, reservations and reconciliation for every user).
No GraphQL, no HTTP.
"""

import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from usercredits.services.errors import DomainError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Swept:
    """What a step did with the documents it went through: how many it moved on, and how
    many raised and were skipped."""

    done: int = 0
    skipped: int = 0


async def each(
    documents: AsyncIterable[dict[str, Any]],
    handle: Callable[[dict[str, Any]], Awaitable[bool]],
    *,
    what: str,
) -> Swept:
    """`handle` of every document in turn (True: it moved one on); one that raises is
    logged (with its traceback unless a business rule refused it) and skipped."""
    done = skipped = 0
    async for document in documents:
        try:
            done += await handle(document)
        except Exception as exc:
            skipped += 1
            log.warning(
                "the sweep skipped a document it could not handle",
                extra={"what": what, "id": str(document.get("_id")), "error": str(exc)},
                exc_info=not isinstance(exc, DomainError),
            )
    return Swept(done=done, skipped=skipped)


@dataclass
class Steps:
    """Runs the steps of one sweep, each on its own: one that raises (the database went
    away, a document broke a whole batch) is logged and named in `failed`, and the next
    step still runs."""

    failed: list[str] = field(default_factory=list)

    async def run(self, name: str, step: Callable[[], Awaitable[T]], otherwise: T) -> T:
        """What `step` returns, or `otherwise` when it raised."""
        try:
            return await step()
        except Exception:
            self.failed.append(name)
            log.exception("a sweep step failed; the next run tries again", extra={"step": name})
            return otherwise
