"""The movement primitive under faults and races, against the real database.

- A fault injected between every two steps of every kind of movement, then the same call
  again: the balance, the ledger and the change stream's events agree, nothing doubled or
  lost.
- 100 concurrent 1-token debits of one 30-token balance, split over two server processes,
  while 32 other clients debit other users: exactly 30 succeed, 70 are INSUFFICIENT_TOKENS.
(The property test over random concurrent movements is tests/test_wallet_properties.py.)
"""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.change_stream import AsyncChangeStream

from tests.api import Api, token
from tests.support import FakeClock, assert_invariant, order_credit, other_wallets, snapshot
from tests.waits import until
from usercredits.models import Balance, LedgerEntryDocument
from usercredits.models.collections import Collections
from usercredits.services import Services
from usercredits.services.errors import Impossible
from usercredits.services.identity.access import Role
from usercredits.services.wallets import Wallets
from usercredits.services.wallets.movements import Movements, Outcome, Posting
from usercredits.values import LedgerReason

ADMIN_TOKEN = token("admin-1", Role.ADMIN)
STEPS = ["read", "flushed", "planned", "written", "inserted"]


class Fault(Exception):
    pass


class FaultOnce:
    """Raises at one step of the first movement that reaches it."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.fired = False

    def __call__(self, step: str) -> None:
        if step == self.step and not self.fired:
            self.fired = True
            raise Fault(step)


async def sweep(wallets: Wallets, clock: FakeClock) -> None:
    """The sweep's wallet steps, with no idle time (the clock stands still here)."""
    await wallets.flush_idle(older_than=clock.now())
    await wallets.expire_lapsed_groups(now=clock.now())


Operation = Callable[[Wallets, FakeClock, str], Awaitable[Any]]

OPERATIONS: dict[str, Operation] = {
    "grant": lambda w, c, r: w.grant(
        user_id="u1", offer_group="pro", tokens=7, idempotency_key="g2"
    ),
    "credit": lambda w, c, r: w.credit(order_credit(c, "o2", 11, 30)),
    "consume": lambda w, c, r: w.consume(
        user_id="u1", offer_group="pro", tokens=9, idempotency_key="c"
    ),
    "reserve": lambda w, c, r: w.reserve(
        user_id="u1", offer_group="pro", tokens=6, ttl_seconds=60, idempotency_key="r1"
    ),
    "commit": lambda w, c, r: w.commit_reservation(reservation_id=r, tokens=2),
    "release": lambda w, c, r: w.release_reservation(reservation_id=r),
    "expire": lambda w, c, r: sweep(w, c),
    "refund": lambda w, c, r: w.take_back(
        user_id="u1", offer_group="pro", tokens=30, order_id="o1"
    ),
}
EFFECT = {
    "grant": ("grant", 7),
    "credit": ("purchase", 11),
    "consume": ("consumption", -9),
    "reserve": ("reservation", -6),
    "commit": ("consumption", -2),
    "release": ("release", 5),
    "expire": ("expiry", -30),
    "refund": ("refund", -30),
}
"""Each operation's entry, which must be in the ledger exactly once after recovery."""


MARKER = "marker"
"""The id of a document inserted into the ledger collection after a test's movements: its
insert event comes after theirs, so once it is seen every event they made has been."""


async def ledger_inserts(stream: AsyncChangeStream[Any], seen: list[str]) -> None:
    async with stream:
        async for change in stream:
            seen.append(str(change["documentKey"]["_id"]))


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_a_fault_between_any_two_steps_loses_and_doubles_nothing(
    services: Services,
    clock: FakeClock,
    mongo: AsyncMongoClient[Any],
    collections: Collections,
    name: str,
    step: str,
) -> None:
    seen: list[str] = []
    ledger = LedgerEntryDocument.get_pymongo_collection()
    stream = await ledger.watch([{"$match": {"operationType": "insert"}}])  # open from here on
    watcher = asyncio.create_task(ledger_inserts(stream, seen))
    try:
        healthy = services.wallets
        # The grant is spent first (priority 10), so the order's lot stays whole.
        await healthy.grant(
            user_id="u1", offer_group="pro", tokens=50, idempotency_key="g", priority=10
        )
        await healthy.credit(order_credit(clock, "o1", 30, 1))
        held = await healthy.reserve(
            user_id="u1", offer_group="pro", tokens=5, ttl_seconds=7 * 86400, idempotency_key="r0"
        )
        if name == "expire":
            clock.advance(days=2)
        faulty = other_wallets(collections, clock, faults=FaultOnce(step))
        operation = OPERATIONS[name]
        with pytest.raises(Fault):
            await operation(faulty, clock, str(held.id))
        await operation(faulty, clock, str(held.id))  # the client's retry

        balance = await assert_invariant("u1", "pro")
        entries = await LedgerEntryDocument.find({"user_id": "u1"}).sort("seq").to_list()
        # Every movement's entries reached the ledger collection itself, in order, once.
        assert [e.seq for e in entries] == list(range(1, balance.seq + 1))
        reason, tokens = EFFECT[name]
        matching = [e for e in entries if (e.reason.value, e.tokens) == (reason, tokens)]
        assert len(matching) == 1, [(e.reason.value, e.tokens) for e in entries]
        await ledger.insert_one({"_id": MARKER})
        await until(lambda: MARKER in seen, seconds=10, what="the marker's insert")
        seen.remove(MARKER)
        assert sorted(seen) == sorted(str(e.id) for e in entries), "one event per entry"
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_100_debits_of_30_tokens_over_two_processes_while_others_debit(
    http: aiohttp.ClientSession, server_url: str, server_process: str
) -> None:
    apis = [Api(http, f"{base}/graphql") for base in (server_url, server_process)]
    grant = """mutation G($u: ID!, $t: Int!) { grantTokens(input: {userId: $u,
      offerGroup: "pro", tokens: $t, idempotencyKey: "seed"}) { id } }"""
    await apis[0].data(grant, {"u": "hot", "t": 30}, as_=ADMIN_TOKEN)
    for i in range(32):
        await apis[0].data(grant, {"u": f"other-{i}", "t": 1000}, as_=ADMIN_TOKEN)
    consume = """mutation C($k: String!) { consumeTokens(input: {offerGroup: "pro", tokens: 1,
      idempotencyKey: $k}) { balanceAfter } }"""

    async def debit(api: Api, user: str, key: str) -> str:
        body = await api.call(consume, {"k": key}, as_=token(user))
        return body["errors"][0]["extensions"]["code"] if body.get("errors") else "ok"

    async def other(i: int) -> list[str]:
        return [await debit(apis[i % 2], f"other-{i}", f"k{n}") for n in range(15)]

    hot = [debit(apis[i % 2], "hot", f"h{i}") for i in range(100)]
    results = await asyncio.gather(*hot, *(other(i) for i in range(32)))
    assert Counter(results[:100]) == {"ok": 30, "INSUFFICIENT_TOKENS": 70}
    for outcomes in results[100:]:
        assert outcomes == ["ok"] * 15
    assert (await assert_invariant("hot", "pro")).tokens == 0
    for i in range(32):
        assert (await assert_invariant(f"other-{i}", "pro")).tokens == 985


async def test_lots_kept_from_an_earlier_write_are_not_taken_for_a_new_balance(
    services: Services, clock: FakeClock, collections: Collections
) -> None:
    """A process keeps the lots it last wrote, so as not to decode them again; a balance
    deleted and made again by another process must not be read with those lots."""
    here = services.wallets
    elsewhere = other_wallets(collections, clock)
    await here.grant(user_id="u1", offer_group="pro", tokens=10, idempotency_key="a")
    await here.consume(user_id="u1", offer_group="pro", tokens=1, idempotency_key="b")
    for document in (Balance, LedgerEntryDocument):
        await document.get_pymongo_collection().delete_many({})
    await elsewhere.grant(user_id="u1", offer_group="pro", tokens=5, idempotency_key="c")
    await elsewhere.consume(user_id="u1", offer_group="pro", tokens=1, idempotency_key="d")
    debit = await here.consume(user_id="u1", offer_group="pro", tokens=1, idempotency_key="e")
    assert debit.balance_after == 3
    balance = await assert_invariant("u1", "pro")
    assert [lot.remaining for lot in balance.lots] == [3]


async def test_a_plan_whose_entries_do_not_add_up_is_stopped_before_it_writes(
    services: Services, clock: FakeClock, collections: Collections
) -> None:
    """The primitive checks the invariant's first line itself: a buggy decision (its lots move
    by other amounts than its entries) is refused and the balance and ledger stay whole."""
    await services.wallets.grant(user_id="u1", offer_group="pro", tokens=10, idempotency_key="g")
    before = await snapshot()

    def buggy(balance: Balance | None, now: datetime) -> Outcome:
        assert balance is not None
        lots = [lot.model_copy(update={"remaining": lot.remaining - 2}) for lot in balance.lots]
        entry = Posting(tokens=-1, reason=LedgerReason.CONSUMPTION)
        return Outcome(lots=lots, holds=balance.holds, entries=[entry])

    with pytest.raises(Impossible, match="moved lots by other amounts than its entries"):
        await Movements(balances=collections.balances, ledger=collections.ledger, clock=clock).move(
            user_id="u1", offer_group="pro", decide=buggy, key="b"
        )
    assert await snapshot() == before
    assert (await assert_invariant("u1", "pro")).tokens == 10
