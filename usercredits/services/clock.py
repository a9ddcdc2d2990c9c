"""The time seam: services ask a Clock for now, so tests can move time without sleeping."""

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


def to_millis(moment: datetime) -> datetime:
    """`moment` truncated to milliseconds, as MongoDB stores dates: a date kept elsewhere
    (a lot, stored as JSON) then compares equal to the same date read back from a field."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class SystemClock:
    """Wall-clock time, aware UTC, truncated to milliseconds."""

    def now(self) -> datetime:
        return to_millis(datetime.now(UTC))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def due_by(moment: datetime, *, inclusive: bool = True) -> dict[str, datetime]:
    """A query range of dates at or before `moment` (before it, if not `inclusive`).

    It has a lower bound as well: the embedded database's planner answers a range from an
    index only when both ends are given, and walks the whole collection for a bare `$lte`
    (measured on 100,000 balances: 1.3 s against 5 ms). Stored dates are never before 1970.
    """
    return {"$gte": EPOCH, "$lte" if inclusive else "$lt": moment}
