"""Credit warnings: what a user should hear of before it happens (tokens about to expire, a
low balance). No GraphQL, no HTTP."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from usercredits.services.wallets import Wallets


class WarningKind(StrEnum):
    EXPIRING = "EXPIRING"
    LOW_BALANCE = "LOW_BALANCE"


@dataclass(frozen=True, slots=True)
class CreditWarning:
    user_id: str
    offer_group: str
    kind: WarningKind
    tokens: int
    expires: datetime | None


async def credit_warnings(
    *, wallets: Wallets, user_id: str, within_seconds: int, low_balance: int, now: datetime
) -> list[CreditWarning]:
    """Live groups that expire within the window, and groups at or below `low_balance`."""
    horizon = now + timedelta(seconds=within_seconds)
    warnings: list[CreditWarning] = []
    for balance in await wallets.balances(user_id=user_id):
        lapsed = balance.expires is not None and balance.expires <= now
        kinds = []
        if balance.expires is not None and not lapsed and balance.expires <= horizon:
            kinds.append(WarningKind.EXPIRING)
        if balance.tokens <= low_balance:
            kinds.append(WarningKind.LOW_BALANCE)
        warnings += [
            CreditWarning(
                user_id=user_id,
                offer_group=balance.offer_group,
                kind=kind,
                tokens=balance.tokens,
                expires=balance.expires,
            )
            for kind in kinds
        ]
    return warnings
