"""The sweep: everything that must happen without a caller, in one place. The server's
periodic sweeper (server/sweeper.py, one instance at a time) and `usercredits expire` (from
cron, with the built-in sweep turned off) both run `sweep`, so neither misses a part. No
GraphQL, no HTTP.

Its expiry part, `expire_due`, is safe to run repeatedly and concurrently: every step is a
guarded update that only one runner can win, so tokens are removed once and orders expire
once. Each step runs on its own, and pending orders are reconciled one by one
(services/steps.py): what cannot be handled is logged, counted in the result and left for
the next run, never the end of it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from usercredits.services.orders import Orders
from usercredits.services.steps import Steps, Swept
from usercredits.services.wallets import Wallets
from usercredits.values import LedgerEntry, LedgerReason

if TYPE_CHECKING:  # the package's container, which is built from the modules it imports
    from usercredits.services import Services

IDLE = timedelta(minutes=1)
"""A balance unmoved this long whose last movement may not be in the ledger is flushed."""


@dataclass(frozen=True, slots=True)
class ExpiryResult:
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


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did: its expiry part, the top-up attempts it carried on and the
    plans it refreshed, and the steps that raised (each logged; the others ran)."""

    expiry: ExpiryResult
    top_ups: Swept
    plans: Swept
    failed_steps: tuple[str, ...] = ()

    @property
    def troubled(self) -> bool:
        """Whether anything was skipped or failed: the log says what."""
        return bool(
            self.expiry.troubled or self.failed_steps or self.top_ups.skipped or self.plans.skipped
        )


async def expire_due(
    *,
    wallets: Wallets,
    orders: Orders,
    now: datetime,
    reconcile_after: timedelta = timedelta(minutes=15),
) -> ExpiryResult:
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
    return ExpiryResult(
        reservations_released=sum(e.reason is LedgerReason.RELEASE for e in released),
        groups_expired=len({(e.user_id, e.offer_group) for e in expiries}),
        tokens_expired=-sum(e.tokens for e in expiries),
        orders_expired=expired_orders,
        orders_reconciled=reconciled.done,
        skipped=reconciled.skipped,
        failed_steps=tuple(steps.failed),
    )


async def sweep(services: "Services", *, reconcile_after: timedelta) -> SweepResult:
    """The whole sweep: the expiry part (`expire_due`), then auto top-ups whose process
    died or whose charge went unanswered, then plans whose period ended without news from
    the provider. Each part runs on its own; one that raises is named in the result."""
    now = services.clock.now()
    expiry = await expire_due(
        wallets=services.wallets,
        orders=services.orders,
        now=now,
        reconcile_after=reconcile_after,
    )
    steps = Steps()
    resumed = await steps.run("resume top-ups", services.top_ups.resume_stale, Swept())
    refreshed = await steps.run(
        "refresh plans", lambda: services.plans.refresh_due(now=now), Swept()
    )
    return SweepResult(
        expiry=expiry, top_ups=resumed, plans=refreshed, failed_steps=tuple(steps.failed)
    )
