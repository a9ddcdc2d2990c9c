"""Billing cycles and expiry arithmetic (pure functions, no I/O).

Months are calendar months (Jan 31 + 1 month = Feb 28/29); a quantity multiplies the cycle
before it is added, so Jan 31 + 2 months is Mar 31, not Mar 28.
"""

from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

from usercredits.services.errors import InvalidInput
from usercredits.values import Cycle

_MONTHS = {Cycle.MONTHLY: 1, Cycle.TRIMESTER: 3, Cycle.SEMESTER: 6, Cycle.YEARLY: 12}
_DAYS = {Cycle.DAILY: 1, Cycle.WEEKLY: 7, Cycle.BI_WEEKLY: 14}


def expiry(
    start: datetime, cycle: Cycle, times: int, custom_cycle_seconds: int | None = None
) -> datetime | None:
    """When `times` consecutive cycles starting at `start` end; None for a one-off (never)."""
    if cycle is Cycle.ONCE:
        return None
    if cycle in _MONTHS:
        return start + relativedelta(months=_MONTHS[cycle] * times)
    if cycle in _DAYS:
        return start + timedelta(days=_DAYS[cycle] * times)
    if not custom_cycle_seconds or custom_cycle_seconds <= 0:
        raise InvalidInput("a CUSTOM cycle needs customCycleSeconds > 0")
    return start + timedelta(seconds=custom_cycle_seconds * times)
