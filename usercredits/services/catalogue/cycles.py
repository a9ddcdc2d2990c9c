"""Billing cycles and expiry arithmetic (pure functions, no I/O).

Months are calendar months (Jan 31 + 1 month = Feb 28/29); a quantity multiplies the cycle
before it is added, so Jan 31 + 2 months is Mar 31, not Mar 28.

No period ends after LATEST: a purchase, grant or offer whose period would is refused
before anything is written or paid, so every stored date leaves room for the arithmetic
done on it (Python's dates end with the year 9999).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

from usercredits.services.errors import InvalidInput, PeriodTooLong
from usercredits.values import Cycle

LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""The latest date a period may end, and the latest expiry the service stores."""
DAY_SECONDS = 86_400
MAX_RENEWAL_DAYS = 3 * 365
"""A renewing plan's longest cycle: Stripe bills at most every three years."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A renewal cycle as payment providers bill it: `count` days, weeks, months or years."""

    unit: str
    count: int

    def after(self, anchor: datetime, times: int = 1) -> datetime:
        """When `times` periods from `anchor` end: counted from the anchor, as providers
        bill, so a plan started on Jan 31 renews on Feb 28, then Mar 31."""
        if self.unit == "month":
            return anchor + relativedelta(months=self.count * times)
        if self.unit == "year":
            return anchor + relativedelta(years=self.count * times)
        days = self.count * times * (7 if self.unit == "week" else 1)
        return anchor + timedelta(days=days)


_INTERVALS = {
    Cycle.DAILY: Interval("day", 1),
    Cycle.WEEKLY: Interval("week", 1),
    Cycle.BI_WEEKLY: Interval("week", 2),
    Cycle.MONTHLY: Interval("month", 1),
    Cycle.TRIMESTER: Interval("month", 3),
    Cycle.SEMESTER: Interval("month", 6),
    Cycle.YEARLY: Interval("year", 1),
}


def renewal_interval(cycle: Cycle, custom_cycle_seconds: int | None = None) -> Interval:
    """The cycle a plan of this offer renews on; a CUSTOM cycle renews in whole days, as
    providers bill no finer. A one-off (ONCE) does not renew."""
    if cycle in _INTERVALS:
        return _INTERVALS[cycle]
    if cycle is Cycle.ONCE:
        raise InvalidInput("a ONCE offer does not renew: buy it with createOrder")
    days, rest = divmod(custom_cycle_seconds or 0, DAY_SECONDS)
    if rest or not 1 <= days <= MAX_RENEWAL_DAYS:
        raise InvalidInput(
            f"a renewing CUSTOM cycle is a whole number of days from 1 to {MAX_RENEWAL_DAYS}; "
            f"customCycleSeconds is {custom_cycle_seconds}"
        )
    return Interval("day", days)


def expiry(
    start: datetime, cycle: Cycle, times: int, custom_cycle_seconds: int | None = None
) -> datetime | None:
    """When `times` consecutive cycles starting at `start` end; None for a one-off (never).
    PeriodTooLong when that is after LATEST."""
    if cycle is Cycle.ONCE:
        return None
    if cycle not in _INTERVALS and (not custom_cycle_seconds or custom_cycle_seconds <= 0):
        raise InvalidInput("a CUSTOM cycle needs customCycleSeconds > 0")
    try:
        if cycle in _INTERVALS:
            end = _INTERVALS[cycle].after(start, times)
        else:
            end = start + timedelta(seconds=(custom_cycle_seconds or 0) * times)
    except (OverflowError, ValueError):  # past the year 9999
        end = None
    if end is None or end > LATEST:
        raise PeriodTooLong(
            f"{times} x {cycle.name} from {start:%Y-%m-%d} ends after {LATEST:%Y-%m-%d}, the "
            "latest date a period may end"
        )
    return end


def paid_expiry(
    start: datetime, cycle: Cycle, times: int, custom_cycle_seconds: int | None = None
) -> datetime | None:
    """`expiry`, at LATEST at the latest: the period of an order already paid, which is
    credited whatever it is (its purchase was checked with `expiry`; purchases appended
    meanwhile may have moved its start)."""
    try:
        return expiry(start, cycle, times, custom_cycle_seconds)
    except PeriodTooLong:
        return LATEST


def check_not_after_latest(moment: datetime | None, what: str) -> None:
    """PeriodTooLong when `moment` (a stated expiry) is after LATEST."""
    if moment is not None and moment.replace(tzinfo=moment.tzinfo or UTC) > LATEST:
        raise PeriodTooLong(
            f"{what} {moment.isoformat()} is after {LATEST:%Y-%m-%d}, the latest date a "
            "period may end"
        )
