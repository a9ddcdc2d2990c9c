"""Pure logic: minor units per currency and calendar expiry arithmetic."""

from datetime import UTC, datetime, timedelta

import pytest

from usercredits.services.catalogue.cycles import expiry
from usercredits.services.errors import InvalidInput
from usercredits.services.money import Money, normalize_currency
from usercredits.values import Cycle

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "currency", "minor", "shown"),
    [
        ("19.99", "USD", 1999, "19.99"),
        ("500", "JPY", 500, "500"),
        ("1.234", "KWD", 1234, "1.234"),
        ("0", "EUR", 0, "0.00"),
        ("5", "usd", 500, "5.00"),
    ],
)
def test_money_minor_units(amount: str, currency: str, minor: int, shown: str) -> None:
    money = Money.parse(amount, currency)
    assert money.minor_units == minor
    assert money.currency == currency.upper()
    assert money.amount == shown


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1.5", "JPY"), ("1.999", "USD"), ("abc", "USD"), ("NaN", "USD"), ("1", "XXX"), ("1", "")],
)
def test_money_rejects_bad_amounts(amount: str, currency: str) -> None:
    with pytest.raises(InvalidInput):
        Money.parse(amount, currency)


def test_unknown_currency_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="ISO 4217"):
        normalize_currency("BTC")


@pytest.mark.parametrize(
    ("cycle", "times", "expected"),
    [
        (Cycle.DAILY, 1, T0 + timedelta(days=1)),
        (Cycle.WEEKLY, 2, T0 + timedelta(days=14)),
        (Cycle.BI_WEEKLY, 1, T0 + timedelta(days=14)),
        (Cycle.MONTHLY, 1, datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),
        (Cycle.MONTHLY, 2, datetime(2026, 3, 31, 12, 0, tzinfo=UTC)),
        (Cycle.TRIMESTER, 1, datetime(2026, 4, 30, 12, 0, tzinfo=UTC)),
        (Cycle.SEMESTER, 1, datetime(2026, 7, 31, 12, 0, tzinfo=UTC)),
        (Cycle.YEARLY, 3, datetime(2029, 1, 31, 12, 0, tzinfo=UTC)),
    ],
)
def test_expiry_for_every_cycle(cycle: Cycle, times: int, expected: datetime) -> None:
    assert expiry(T0, cycle, times) == expected


def test_leap_year_month_end() -> None:
    assert expiry(datetime(2028, 1, 31, tzinfo=UTC), Cycle.MONTHLY, 1) == datetime(
        2028, 2, 29, tzinfo=UTC
    )


def test_once_never_expires_and_custom_uses_seconds() -> None:
    assert expiry(T0, Cycle.ONCE, 5) is None
    assert expiry(T0, Cycle.CUSTOM, 3, 3600) == T0 + timedelta(hours=3)
    with pytest.raises(InvalidInput):
        expiry(T0, Cycle.CUSTOM, 1, None)
