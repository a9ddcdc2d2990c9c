"""The service as it is deployed: `usercredits serve` at its default worker count (Stripe
configured, so two workers on two cores), every request on a new connection so that either
worker may answer it. What crosses processes: the ledger's order, lapses written before any
sweep, EXPIRED decided the same with or without one, a commit as one movement and one live
event."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.api import Api, TransportWsClient, token, ws_url
from tests.conftest import Deployed
from tests.shop import upsert_offer
from tests.support import run_cli
from usercredits.services.identity.access import Role

ADMIN = token("admin-1", Role.ADMIN)

ENTRY = "id offerGroup tokens released balanceAfter reason idempotencyKey"


def a_user() -> str:
    """A user of this test alone: the deployed server outlives each test's database."""
    return f"u-{uuid.uuid4().hex[:8]}"


async def grant(
    api: Api,
    user: str,
    group: str,
    tokens: int,
    *,
    expires: datetime | None = None,
    priority: int = 50,
) -> dict[str, Any]:
    made: dict[str, Any] = (
        await api.data(
            f"mutation G($input: GrantTokensInput!) {{ grantTokens(input: $input) {{ {ENTRY} }} }}",
            {
                "input": {
                    "userId": user,
                    "offerGroup": group,
                    "tokens": tokens,
                    "priority": priority,
                    "expires": None if expires is None else expires.isoformat(),
                    "idempotencyKey": f"grant-{uuid.uuid4().hex}",
                }
            },
            as_=ADMIN,
        )
    )["grantTokens"]
    return made


CONSUME = f"""mutation C($user: ID!, $group: String!, $tokens: Int!, $key: String!) {{
  consumeTokens(input: {{userId: $user, offerGroup: $group, tokens: $tokens,
    idempotencyKey: $key}}) {{ {ENTRY} }} }}"""

SERVICE = token("backend", Role.SERVICE)


async def consume(api: Api, user: str, group: str, tokens: int) -> dict[str, Any]:
    variables = {"user": user, "group": group, "tokens": tokens, "key": uuid.uuid4().hex}
    entry: dict[str, Any] = (await api.data(CONSUME, variables, as_=SERVICE))["consumeTokens"]
    return entry


async def consume_code(api: Api, user: str, group: str, tokens: int) -> str:
    variables = {"user": user, "group": group, "tokens": tokens, "key": uuid.uuid4().hex}
    return await api.error_code(CONSUME, variables, as_=SERVICE)


LEDGER = f"""query L($user: ID!, $group: String, $first: Int!, $after: String) {{
  ledger(userId: $user, offerGroup: $group, first: $first, after: $after) {{
    edges {{ cursor node {{ {ENTRY} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""


async def whole_ledger(
    api: Api, user: str, group: str | None = None, first: int = 50
) -> list[dict[str, Any]]:
    """Every entry, newest first, read page by page."""
    entries: list[dict[str, Any]] = []
    after = None
    while True:
        variables = {"user": user, "group": group, "first": first, "after": after}
        page = (await api.data(LEDGER, variables, as_=ADMIN))["ledger"]
        entries += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return entries
        after = page["pageInfo"]["endCursor"]


async def balance(api: Api, user: str, group: str) -> int:
    query = """query W($user: ID!, $g: String!) {
      wallet(userId: $user) { balance(offerGroup: $g) { tokens } } }"""
    found = (await api.data(query, {"user": user, "g": group}, as_=ADMIN))["wallet"]["balance"]
    return 0 if found is None else int(found["tokens"])


def assert_explains(entries: list[dict[str, Any]], tokens: int) -> None:
    """A group's ledger, newest first, runs from 0 to `tokens` entry by entry."""
    running = 0
    for entry in reversed(entries):
        running += entry["released"] + entry["tokens"]
        assert entry["balanceAfter"] == running, entries
    assert running == tokens, f"the ledger sums to {running}, the balance is {tokens}"


async def lapse_of(moment: datetime) -> None:
    """Waits until the wall clock (the deployed server's) is past `moment`."""
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.05)


@pytest.fixture
def api(deployed: Deployed, spread: aiohttp.ClientSession) -> Api:
    return Api(spread, deployed.graphql)


@pytest.mark.timeout(60)
async def test_sequential_debits_answered_by_two_workers_are_listed_in_commit_order(
    deployed: Deployed, api: Api
) -> None:
    assert len(deployed.workers) == 2
    user = a_user()
    made = [await grant(api, user, "pro", 1000), await grant(api, user, "chat", 1000)]
    for n in range(1, 16):
        made.append(await consume(api, user, "chat" if n % 3 == 0 else "pro", n))
    # The user's ledger across groups, and each group's, page by page: each entry once, in
    # the order the movements committed.
    listed = await whole_ledger(api, user, first=4)
    assert [e["id"] for e in listed] == [e["id"] for e in reversed(made)]
    for group in ("pro", "chat"):
        listed = await whole_ledger(api, user, group, first=3)
        assert [e["id"] for e in listed] == [
            e["id"] for e in reversed(made) if e["offerGroup"] == group
        ]
        assert_explains(listed, await balance(api, user, group))


@pytest.mark.timeout(60)
async def test_a_lapsed_lot_is_in_the_ledger_before_any_sweep(api: Api) -> None:
    user = a_user()
    ends = datetime.now(UTC) + timedelta(seconds=1)
    await grant(api, user, "pro", 10, expires=ends)
    await consume(api, user, "pro", 6)
    await lapse_of(ends)
    # A new credit into the group writes the lapse of the 4 left before its own entry.
    await grant(api, user, "pro", 10)
    listed = await whole_ledger(api, user, "pro")
    assert [(e["reason"], e["tokens"], e["balanceAfter"]) for e in reversed(listed)] == [
        ("grant", 10, 10),
        ("consumption", -6, 4),
        ("expiry", -4, 0),
        ("grant", 10, 10),
    ]
    assert_explains(listed, await balance(api, user, "pro"))
    # With no movement after the lapse, the ledger read says so too.
    await grant(api, user, "chat", 5, expires=ends + timedelta(seconds=1))
    await lapse_of(ends + timedelta(seconds=1))
    listed = await whole_ledger(api, user, "chat")
    assert [(e["reason"], e["tokens"]) for e in listed] == [("expiry", -5), ("grant", 5)]
    assert_explains(listed, await balance(api, user, "chat"))


async def sweep(database_uri: str, database: str) -> None:
    """`usercredits expire`, the sweep as cron runs it."""
    env = os.environ | {"USERCREDITS_MONGODB_URI": database_uri, "USERCREDITS_DATABASE": database}
    code, _, errors = await run_cli("expire", env=env)
    assert code == 0, errors


@pytest.mark.timeout(90)
async def test_expired_or_insufficient_is_the_same_answer_before_and_after_the_sweep(
    api: Api, deployed: Deployed, database_uri: str
) -> None:
    user = a_user()
    ends = datetime.now(UTC) + timedelta(seconds=1)
    await grant(api, user, "pro", 5, expires=ends)
    await grant(api, user, "pro", 3, priority=10)  # spent first
    await consume(api, user, "pro", 3)
    await grant(api, user, "chat", 2)
    await consume(api, user, "chat", 2)
    await lapse_of(ends)
    before = [await consume_code(api, user, group, 1) for group in ("pro", "chat")]
    await sweep(database_uri, deployed.database)
    after = [await consume_code(api, user, group, 1) for group in ("pro", "chat")]
    assert before == after == ["EXPIRED", "INSUFFICIENT_TOKENS"]
    # Credited since the lapse, then spent: too few tokens, not expired ones.
    await grant(api, user, "pro", 2)
    await consume(api, user, "pro", 2)
    assert await consume_code(api, user, "pro", 1) == "INSUFFICIENT_TOKENS"
    assert_explains(await whole_ledger(api, user, "pro"), 0)


BALANCE_CHANGED = (
    "subscription S($user: ID) { balanceChanged(userId: $user) { offerGroup tokens delta reason } }"
)


@pytest.fixture
async def socket(deployed: Deployed) -> AsyncIterator[TransportWsClient]:
    async with aiohttp.ClientSession() as http:
        client = await TransportWsClient.connect(
            http, ws_url(deployed.url), {"authorization": f"Bearer {ADMIN}"}
        )
        yield client
        await client.close()


async def live(client: TransportWsClient, api: Api, user: str) -> None:
    """Subscribes to the user's balance changes and returns once they arrive: a marker grant
    is made until its event comes back (the subscription may start after the first)."""
    await client.subscribe("1", BALANCE_CHANGED, {"user": user})
    granted = 0
    for _ in range(20):
        await grant(api, user, "marker", 1)
        granted += 1
        try:
            message = await client.receive(wait=1)
        except TimeoutError:
            continue
        break
    else:
        raise AssertionError("the subscription never went live")
    # Live when the marker that came was published: every later marker comes too, in order
    # (the balance is the count of markers). Read up to the last one granted.
    while True:
        changed = message["payload"]["data"]["balanceChanged"]
        assert changed["offerGroup"] == "marker", message
        if changed["tokens"] == granted:
            return
        message = await client.receive(wait=10)


@pytest.mark.timeout(60)
async def test_a_commit_is_one_entry_and_one_live_event(
    api: Api, socket: TransportWsClient
) -> None:
    user = a_user()
    await live(socket, api, user)
    await grant(api, user, "pro", 100)
    held = (
        await api.data(
            """mutation R($user: ID!) { reserveTokens(input: {userId: $user, offerGroup: "pro",
               tokens: 10, idempotencyKey: "job"}) { id } }""",
            {"user": user},
            as_=SERVICE,
        )
    )["reserveTokens"]
    committed = (
        await api.data(
            f'mutation {{ commitReservation(id: "{held["id"]}", tokens: 4) {{ {ENTRY} }} }}',
            as_=SERVICE,
        )
    )["commitReservation"]
    committed_as = (committed["tokens"], committed["released"], committed["balanceAfter"])
    assert committed_as == (-4, 10, 96)
    await consume(api, user, "pro", 1)  # the marker after the commit's event
    events = []
    while len(events) < 4:
        events.append((await socket.receive())["payload"]["data"]["balanceChanged"])
    assert [(e["reason"], e["delta"], e["tokens"]) for e in events] == [
        ("grant", 100, 100),
        ("reservation", -10, 90),
        ("consumption", -4, 96),
        ("consumption", -1, 95),
    ]
    listed = await whole_ledger(api, user, "pro")
    assert [(e["reason"], e["tokens"], e["released"]) for e in listed[:2]] == [
        ("consumption", -1, 0),
        ("consumption", -4, 10),
    ]
    assert_explains(listed, 95)


@pytest.mark.timeout(60)
async def test_orders_made_through_two_workers_are_listed_newest_first(api: Api) -> None:
    offer = await upsert_offer(api)
    user = a_user()
    made = []
    for _ in range(8):
        created = await api.data(
            "mutation O($offer: ID!) { createOrder(input: {offerId: $offer}) { order { id } } }",
            {"offer": offer},
            as_=token(user),
        )
        made.append(created["createOrder"]["order"]["id"])
    listed = await api.data(
        "query L($user: ID!) { orders(userId: $user, first: 20) { edges { node { id } } } }",
        {"user": user},
        as_=ADMIN,
    )
    assert [edge["node"]["id"] for edge in listed["orders"]["edges"]] == made[::-1]
