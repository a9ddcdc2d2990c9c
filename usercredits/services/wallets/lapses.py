"""Lapsed lots: the sweep's token half (expired lots lose their spendable tokens, with an
expiry entry naming them, as the next movement of their balance would anyway) and its
recovery half (movements cut short by a crash are put in the ledger). Part of `Wallets`
(services/wallets/__init__.py); services/sweep.py runs them."""

from datetime import datetime
from typing import Any

from usercredits.services.clock import due_by
from usercredits.services.wallets.base import WalletBase, batched
from usercredits.services.wallets.movements import catch_up
from usercredits.values import LedgerEntry


class Lapses(WalletBase):
    async def flush_idle(self, *, older_than: datetime) -> int:
        """The sweep's recovery half: see Movements.flush_idle."""
        return await self._movements.flush_idle(older_than=older_than)

    async def expire_lapsed_groups(self, *, now: datetime) -> list[LedgerEntry]:
        """The sweep's token half: every lapsed lot loses its spendable tokens, once, with
        an expiry entry naming the lots, even when two sweeps run at once."""

        async def expire(raw: dict[str, Any]) -> list[LedgerEntry]:
            if raw.get("next_expiry") is None or raw["next_expiry"] > now:
                return []  # due for another reason (Balance.due_at)
            return await self._movements.move(
                user_id=raw["user_id"], offer_group=raw["offer_group"], decide=catch_up
            )

        cursor = self._balances.find(
            {"due_at": due_by(now)}, {"user_id": 1, "offer_group": 1, "next_expiry": 1}
        )
        return [entry for entries in await batched(cursor, expire) for entry in entries]
