"""The expiry sweep and credit warnings. No GraphQL, no HTTP.

`expire_due` is safe to run repeatedly and concurrently: every step is a guarded update that
only one runner can win, so tokens are removed once and orders expire once. Each step runs
on its own, and pending orders are reconciled one by one (services/sweeps.py): what cannot
be handled is logged, counted in the result and left for the next run, never the end of it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from usercredits.services.orders import Orders
from usercredits.services.sweeps import Steps, Swept
from usercredits.services.wallets import Wallets
from usercredits.values import LedgerEntry, LedgerReason

IDLE = timedelta(minutes=1)
"""A balance unmoved this long whose last movement may not be in the ledger is flushed."""


@dataclass(frozen=True, slots=True)
class SweepResult:
    reservations_released: int
    groups_expired: int
    tokens_expired: int
    orders_expired: int
    orders_reconciled: int
    skipped: int = 0
    """Pending orders that could not be reconciled this run (each logged)."""
    failed_steps: tuple[str, ...] = ()
    """Steps that raised (each logged); the others ran."""

    @property
    def troubled(self) -> bool:
        """Whether anything was skipped or failed: the log says what."""
        return bool(self.skipped or self.failed_steps)


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


async def expire_due(
    *,
    wallets: Wallets,
    orders: Orders,
    now: datetime,
    reconcile_after: timedelta = timedelta(minutes=15),
) -> SweepResult:
    """Puts cut-short movements of idle balances into the ledger; releases lapsed
    reservations, so their tokens expire with their lots; expires lapsed lots; last,
    pending orders older than `reconcile_after` are refreshed (missed webhooks)."""
    steps = Steps()
    none: list[LedgerEntry] = []
    await steps.run("flush idle balances", lambda: wallets.flush_idle(older_than=now - IDLE), 0)
    released = await steps.run(
        "release lapsed reservations", lambda: wallets.release_expired_reservations(now=now), none
    )
    lapsed = await steps.run(
        "expire lapsed lots", lambda: wallets.expire_lapsed_groups(now=now), none
    )
    expiries = [e for e in (*released, *lapsed) if e.reason is LedgerReason.EXPIRY]
    expired_orders = await steps.run("expire orders", lambda: orders.expire_orders(now=now), 0)
    reconciled = await steps.run(
        "reconcile pending orders",
        lambda: orders.reconcile_pending(older_than=now - reconcile_after),
        Swept(),
    )
    return SweepResult(
        reservations_released=sum(e.reason is LedgerReason.RELEASE for e in released),
        groups_expired=len({(e.user_id, e.offer_group) for e in expiries}),
        tokens_expired=-sum(e.tokens for e in expiries),
        orders_expired=expired_orders,
        orders_reconciled=reconciled.done,
        skipped=reconciled.skipped,
        failed_steps=tuple(steps.failed),
    )


async def credit_warnings(
    *, wallets: Wallets, user_id: str, within_seconds: int, low_balance: int, now: datetime
) -> list[CreditWarning]:
    """Live groups that expire within the window, and groups at or below `low_balance`."""
    horizon = now + timedelta(seconds=within_seconds)
    warnings = []
    for balance in await wallets.balances(user_id=user_id):
        lapsed = balance.expires is not None and balance.expires <= now
        if balance.expires is not None and not lapsed and balance.expires <= horizon:
            warnings.append(
                CreditWarning(
                    user_id=user_id,
                    offer_group=balance.offer_group,
                    kind=WarningKind.EXPIRING,
                    tokens=balance.tokens,
                    expires=balance.expires,
                )
            )
        if balance.tokens <= low_balance:
            warnings.append(
                CreditWarning(
                    user_id=user_id,
                    offer_group=balance.offer_group,
                    kind=WarningKind.LOW_BALANCE,
                    tokens=balance.tokens,
                    expires=balance.expires,
                )
            )
    return warnings
