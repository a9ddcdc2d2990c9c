"""The auto top-up trigger, fed by each process's live change feed (server/changes.py): for
a ledger entry that leaves a ruled group at or below its threshold, or a debit refused for
want of tokens (told by the wallets, as it leaves no entry), it asks services/topups/auto.py to
top the group up, which checks the balance itself.

It rides the feed every process already follows, so it costs no stream of its own, and it
sees rule changes in the same stream as the debits: a debit made after `setAutoTopUp`
answered is always judged by that rule. Every instance may ask at once; the top-up's guards
are in the database (one open attempt per user and group), so two instances, or a thousand
debits, make one charge. While no rule is enabled it looks nothing up.
"""

import asyncio
import logging
from collections import OrderedDict

from pymongo.errors import PyMongoError

from usercredits.models import AutoTopUpDocument
from usercredits.services.topups.auto import AutoTopUps
from usercredits.values import LedgerEntry
from usercredits.values.changes import Touched

log = logging.getLogger(__name__)

RULES = AutoTopUpDocument.Settings.name
KNOWN_RULES = 100_000
"""(user, group) pairs whose threshold (or lack of a rule) is remembered per process."""
CONCURRENT_TOP_UPS = 8
"""Top-ups one process runs at once (each may wait for the provider)."""

Pair = tuple[str, str]


class TopUpTrigger:
    def __init__(self, *, top_ups: AutoTopUps) -> None:
        self._top_ups = top_ups
        # Until the first look at the rules: what the feed shows meanwhile is kept.
        self._any_enabled = True
        self._rules_changed = True
        self._generation = 0
        """Bumped by every rule change: thresholds read under an older one are dropped."""
        self._thresholds: OrderedDict[Pair, int | None] = OrderedDict()
        self._low: dict[Pair, int | None] = {}
        """Pairs to judge, with their spendable tokens (None: a refused debit's, unknown)."""
        self._wake = asyncio.Event()
        self._wake.set()
        self._running: dict[Pair, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(CONCURRENT_TOP_UPS)
        self._judging = False

    watched = (RULES,)
    """The collections whose changes the feed hands on as Touched."""

    @property
    def backlog(self) -> int:
        """Groups shown to the trigger that it has yet to judge, is judging, or is topping
        up: 0 once it has acted on everything shown so far (a metric, so that operators,
        and tests, can tell that no top-up is on its way)."""
        return len(self._low) + len(self._running) + self._judging

    def saw(self, change: LedgerEntry | Touched) -> None:
        """Called by the feed for each ledger entry and rule change, in the stream's order;
        never waits."""
        if isinstance(change, Touched):
            if change.collection == RULES:
                self._generation += 1
                self._thresholds.clear()
                self._any_enabled = True  # until the next look says otherwise
                self._rules_changed = True
                self._wake.set()
            return
        if self._any_enabled and change.tokens < 0:
            self._low[(change.user_id, change.offer_group)] = change.balance_after
            self._wake.set()

    def ran_short(self, user_id: str, offer_group: str) -> None:
        """Called for each debit or reservation refused for want of tokens, which leaves no
        ledger entry: a group emptied while its top-up could not run (its card refused,
        then replaced; a process stopped before judging its last debit) is judged again
        at its next refused debit. Never waits."""
        if self._any_enabled:
            self._low.setdefault((user_id, offer_group), None)
            self._wake.set()

    async def run(self) -> None:
        """Judges what the feed saw, batch by batch, until cancelled."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                low, self._low = self._low, {}
                self._judging = True
                try:
                    await self._judge(low)
                except PyMongoError:
                    # Judged again with the next movement (the database is back by then).
                    self._rules_changed = True
                    self._low.update({p: t for p, t in low.items() if p not in self._low})
                    log.exception("auto top-up trigger failed; the next movement tries again")
                finally:
                    self._judging = False
        finally:
            for task in self._running.values():
                task.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _judge(self, low: dict[Pair, int | None]) -> None:
        if self._rules_changed:
            self._rules_changed = False
            self._any_enabled = await self._top_ups.any_enabled()
        if not self._any_enabled:
            return
        generation = self._generation
        unknown = {pair for pair in low if pair not in self._thresholds}
        found = await self._top_ups.thresholds(unknown)
        if generation != self._generation:  # a rule changed while they were read
            self._low.update({p: t for p, t in low.items() if p not in self._low})
            self._wake.set()
            return
        for pair in unknown:
            self._thresholds[pair] = found.get(pair)
            if len(self._thresholds) > KNOWN_RULES:
                self._thresholds.popitem(last=False)
        for pair, tokens in low.items():
            threshold = self._thresholds.get(pair)
            if threshold is None or pair in self._running:
                continue
            if tokens is None or tokens <= threshold:
                self._running[pair] = asyncio.create_task(self._top_up(pair), name="top-up")

    async def _top_up(self, pair: Pair) -> None:
        user_id, offer_group = pair
        try:
            async with self._slots:
                await self._top_ups.top_up(user_id=user_id, offer_group=offer_group)
        except Exception:  # logged, never lost: the next movement below tries again
            log.exception("auto top-up failed", extra={"user_id": user_id, "group": offer_group})
        finally:
            del self._running[pair]
