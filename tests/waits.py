"""Waiting in the tests for something to happen, never for a while: `until` polls a
condition to a deadline, and the barriers below prove that the system has processed
everything an action caused, so that a test may then check that nothing else came.

A barrier is a marker: a change committed after the action under test, whose effect must
come after any effect of the action (the change stream, and so the webhook relay, reads
committed writes in order). Once the marker's effect is seen, and the work it queued is
done, whatever the action would have caused has happened; the marker is then forgotten,
so that the test's own checks see only what the action caused."""

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import aiohttp
import orjson

from tests.api import Api, sample, token
from tests.receiver import Receiver
from tests.support import START
from usercredits.models import WebhookDeliveryDocument
from usercredits.services.identity.access import Role

ADMIN = token("waits-admin", Role.ADMIN, at=START, ttl=timedelta(days=3650))
"""Good on the wall clock and on a FakeClock moved on by weeks."""
GRANT = """mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { id } }"""
CONSUME = """mutation C($input: ConsumeTokensInput!) { consumeTokens(input: $input) {
  balanceAfter } }"""
MARKER_GROUP = "marker"
"""A group without an alert rule: a marker's debit to 0 there is one balance.depleted."""

_markers = itertools.count(1)


async def until(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    seconds: float = 15,
    every: float = 0.02,
    what: str = "the condition",
) -> None:
    """Returns once `condition()` (a function, or a coroutine function) holds; fails the
    test after `seconds`, naming `what`. For the state of other tasks, processes or the
    database, which offers no event to await."""
    deadline = time.monotonic() + seconds
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:g} s for {what}")
        await asyncio.sleep(every)


def marker_user() -> str:
    """A user of its own for each marker, so that markers never meet each other's state."""
    return f"marker-{next(_markers)}"


def wall_clock() -> datetime:
    return datetime.now(UTC)


def _user_of(body: str) -> Any:
    return orjson.loads(body).get("data", {}).get("userId")


async def _deliveries_settled(user: str, now: Callable[[], datetime]) -> bool:
    """The marker's delivery exists and no delivery is being sent or due: every attempt
    made so far has reached the receiver (which records a request before it answers) and
    its outcome is recorded."""
    found = await WebhookDeliveryDocument.get_pymongo_collection().find({}).to_list(None)
    if not any(_user_of(d["body"]) == user for d in found):
        return False
    moment = now()
    return all(
        d.get("claim") is None
        and (d.get("next_attempt_at") is None or d["next_attempt_at"] > moment)
        for d in found
    )


async def webhooks_settled(
    api: Api,
    receiver: Receiver,
    *,
    group: str = MARKER_GROUP,
    tokens: int = 1,
    expires: datetime | None = None,
    now: Callable[[], datetime] = wall_clock,
    seconds: float = 15,
) -> None:
    """The webhook barrier. Commits a marker's movement whose event the receiver's endpoint
    wants: a marker user's grant of `tokens` in `group` and a debit of them all (in the
    default group, balance.depleted; in a ruled group whose threshold is below `tokens`,
    balance.low too); or, given `expires`, only the grant, whose lot a later scan announces
    as tokens.expiring (the group's rule must have a window that reaches it). Then waits
    until the marker's delivery is made and no delivery is being sent or due by `now` (the
    servers' clock).

    The relay reads the stream in commit order and writes a batch's deliveries in the
    order of its changes, so once the marker's delivery exists, every delivery of the
    changes before it does; once none is being sent or due, every attempt of them has
    reached the receiver. The marker is then forgotten: its deliveries are deleted (so no
    retry of them comes later) and its requests removed from the receiver's record."""
    user = marker_user()
    grant = {"userId": user, "offerGroup": group, "tokens": tokens, "idempotencyKey": "grant"}
    if expires is not None:
        grant["expires"] = expires.isoformat()
    await api.data(GRANT, {"input": grant}, as_=ADMIN)
    if expires is None:
        debit = {"userId": user, "offerGroup": group, "tokens": tokens, "idempotencyKey": "debit"}
        await api.data(CONSUME, {"input": debit}, as_=ADMIN)
    await until(
        lambda: _deliveries_settled(user, now),
        seconds=seconds,
        what=f"the webhook deliveries up to {user}'s to be sent",
    )
    collection = WebhookDeliveryDocument.get_pymongo_collection()
    marked = [d["_id"] async for d in collection.find({}) if _user_of(d["body"]) == user]
    await collection.delete_many({"_id": {"$in": marked}})
    receiver.requests[:] = [r for r in receiver.requests if _user_of(r.body) != user]
    receiver.accepted[:] = [r for r in receiver.accepted if _user_of(r.body) != user]


async def _sweeps_ended(http: aiohttp.ClientSession, base: str) -> float:
    """Sweep runs the server at `base` ended (done or failed), from its /metrics."""
    ended = 0.0
    for result in ("done", "failed"):
        ended += await metric(http, base, "usercredits_sweep_runs_total", result=result)
    return ended


async def swept(http: aiohttp.ClientSession, base: str, *, seconds: float = 15) -> None:
    """Waits until a whole periodic sweep of the server at `base` ran after this call: two
    runs end after it, and the second began after the first ended."""
    before = await _sweeps_ended(http, base)

    async def twice() -> bool:
        return await _sweeps_ended(http, base) >= before + 2

    await until(twice, seconds=seconds, every=0.05, what="two sweeps to end")


async def metric(http: aiohttp.ClientSession, base: str, name: str, **labels: str) -> float:
    """One sample of the /metrics of the server at `base`; 0 while the series is absent."""
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    try:
        return sample(text, name, **labels)
    except AssertionError:
        return 0.0


async def subscribers(http: aiohttp.ClientSession, base: str, count: int) -> None:
    """Waits until the server at `base` holds `count` live subscriptions in its event hub:
    a subscription made is listening, one ended is gone."""

    async def held() -> bool:
        return await metric(http, base, "usercredits_open_subscriptions") == count

    await until(held, seconds=10, every=0.02, what=f"{count} open subscriptions")


async def feed_saw(http: aiohttp.ClientSession, base: str, reason: str, count: int) -> None:
    """Waits until the change feed of the server at `base` has published `count` ledger
    entries of `reason` to its subscribers (it counts each as it hands it on)."""

    async def seen() -> bool:
        found = await metric(http, base, "usercredits_ledger_entries_total", reason=reason)
        return found >= count

    await until(seen, seconds=10, every=0.02, what=f"the feed to see {count} {reason} entries")


async def top_ups_settled(http: aiohttp.ClientSession, bases: list[str], entries: int) -> None:
    """Waits until the auto top-up trigger of each server at `bases` has acted on all it
    was shown, for checks that no top-up came: its change feed has seen the `entries` ledger
    entries committed so far (it shows each to the trigger as it counts it, in one pass over
    a fetched batch) and the trigger's backlog is empty (nothing to judge, no top-up
    running)."""

    async def caught_up(base: str) -> bool:
        async with http.get(f"{base}/metrics") as response:
            text = await response.text()
        seen = sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("usercredits_ledger_entries_total{")
        )
        return seen >= entries and sample(text, "usercredits_auto_top_up_backlog") == 0

    for base in bases:
        await until(
            partial(caught_up, base), seconds=10, what=f"the top-up trigger at {base} to catch up"
        )
