"""Reading balances and the ledger: a group's balance as readers see it (only live lots
count), and the ledger newest first. Part of `Wallets` (services/wallets/__init__.py)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from usercredits.models import Balance, balance_id
from usercredits.services.pages import newest_first
from usercredits.services.wallets.base import WalletBase
from usercredits.services.wallets.lots import live_lots
from usercredits.services.wallets.movements import catch_up
from usercredits.values import LedgerEntry, Lot

MAX_PAGE = 500
LEDGER_PAGE = 50
"""Entries in a ledger page when the caller does not say."""
WHEN_DUE = {"user_id": 1, "offer_group": 1, "next_expiry": 1}
"""What `_catch_up` reads of a balance."""


@dataclass(frozen=True, slots=True)
class ExpiryForecast:
    at: datetime
    tokens: int


@dataclass(frozen=True, slots=True)
class BalanceView:
    """A group's balance as readers see it at `now`: only live lots count."""

    user_id: str
    offer_group: str
    tokens: int
    reserved: int
    starts: datetime
    expires: datetime | None
    """When the last live lot ends; None when one never does (or none is live)."""
    lots: list[Lot]
    """Live lots, in the order debits draw them."""
    next_expiry: ExpiryForecast | None

    @classmethod
    def of(cls, balance: Balance, now: datetime) -> "BalanceView":
        lots = live_lots(balance.lots, now)
        ends = [lot.expires for lot in lots]
        soonest = min((e for e in ends if e is not None), default=None)
        return cls(
            user_id=balance.user_id,
            offer_group=balance.offer_group,
            tokens=sum(lot.remaining for lot in lots),
            reserved=balance.reserved,
            starts=balance.starts,
            expires=None if not ends or None in ends else max(e for e in ends if e),
            lots=lots,
            next_expiry=None
            if soonest is None
            else ExpiryForecast(
                at=soonest, tokens=sum(lot.remaining for lot in lots if lot.expires == soonest)
            ),
        )


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: list[LedgerEntry]
    has_next_page: bool


class BalanceReads(WalletBase):
    """Reads that show the ledger whole: a balance one of whose lots lapsed since it last
    moved has that lapse written first (the movement the sweep would make), so that its
    ledger adds up to the balance read, sweep or not. Only such a balance costs a write."""

    async def balances(self, *, user_id: str) -> list[BalanceView]:
        """The user's balances, one per group that was ever credited, by group name."""
        now = self._clock.now()
        query = {"user_id": user_id}
        docs = await self._read(query)
        if await self._catch_up(docs, now):
            docs = await self._read(query)
        return [BalanceView.of(Balance.model_validate(doc), now) for doc in docs]

    async def balance(self, *, user_id: str, offer_group: str) -> BalanceView | None:
        now = self._clock.now()
        query = self._scope.scoped({"_id": balance_id(user_id, offer_group)}, [user_id])
        docs = await self._read(query)
        if await self._catch_up(docs, now):
            docs = await self._read(query)
        return BalanceView.of(Balance.model_validate(docs[0]), now) if docs else None

    async def ledger(
        self,
        *,
        user_id: str,
        offer_group: str | None = None,
        first: int = LEDGER_PAGE,
        after: str | None = None,
    ) -> LedgerPage:
        """Entries newest first, in the order they committed; `after` is the id of the
        last entry of the previous page."""
        query: dict[str, Any] = {"user_id": user_id}
        if offer_group is not None:
            query["offer_group"] = offer_group
        # The balances are found by `_id` or user (a range on next_expiry beside the user
        # makes the embedded database scan), their due lapses told apart here.
        owned = {"_id": balance_id(user_id, offer_group)} if offer_group else {"user_id": user_id}
        moments = await self._read(self._scope.scoped(owned, [user_id]), WHEN_DUE)
        await self._catch_up(moments, self._clock.now())
        docs, more = await newest_first(
            self._ledger, query, first=first, after=after, most=MAX_PAGE
        )
        return LedgerPage(
            entries=[LedgerEntry.model_validate(doc) for doc in docs], has_next_page=more
        )

    async def _read(
        self, query: dict[str, Any], fields: dict[str, int] | None = None
    ) -> list[dict[str, Any]]:
        cursor = self._balances.find(query, fields).sort("offer_group", 1)
        return [doc async for doc in cursor]

    async def _catch_up(self, docs: list[dict[str, Any]], now: datetime) -> bool:
        """Writes the lapse of every balance in `docs` that has one due; whether any had."""
        due = [d for d in docs if d.get("next_expiry") is not None and d["next_expiry"] <= now]
        for doc in due:
            await self._movements.move(
                user_id=doc["user_id"], offer_group=doc["offer_group"], decide=catch_up
            )
        return bool(due)
