"""The in-process fan-out, without a server: the event hub's channels, and a subscription
event executed once for every subscriber that asked the same thing."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
import strawberry
from strawberry.types import ExecutionResult

from tests.waits import until
from usercredits.api import build_schema
from usercredits.schema.context import Context
from usercredits.services import Services
from usercredits.services.events import EventHub, SubscriberTooSlow
from usercredits.services.identity.access import Principal, Role
from usercredits.values import LedgerEntry, LedgerReason

pytestmark = pytest.mark.timeout(30)

BALANCE = """subscription B($group: String) {
  balanceChanged(offerGroup: $group) { userId offerGroup tokens delta }
}"""


def entry(user: str, balance_after: int, group: str = "pro") -> LedgerEntry:
    return LedgerEntry.model_validate(
        {
            "_id": f"e-{user}-{balance_after}",
            "user_id": user,
            "offer_group": group,
            "tokens": -1,
            "balance_after": balance_after,
            "seq": 100 - balance_after,
            "reason": LedgerReason.CONSUMPTION,
            "idempotency_key": f"k-{balance_after}",
            "created_at": datetime.now(UTC),
        }
    )


async def test_a_subscriber_too_far_behind_gets_its_backlog_then_is_ended() -> None:
    hub = EventHub(max_backlog=3)
    slow = hub.balance_events("alice")
    fast = hub.balance_events("alice")
    # Both are listening once their first read is waiting.
    slow_first = asyncio.ensure_future(anext(slow))
    fast_next = asyncio.ensure_future(anext(fast))
    await asyncio.sleep(0)
    read = []
    for balance in range(10, 4, -1):
        hub.publish_entry(entry("alice", balance))
        read.append((await fast_next).tokens)
        fast_next = asyncio.ensure_future(anext(fast))
    assert read == [10, 9, 8, 7, 6, 5]
    # The slow one got its first event and read nothing more: three more were queued for
    # it, the next one ended it; it still reads what was queued, in order.
    assert (await slow_first).tokens == 10
    assert [(await anext(slow)).tokens for _ in range(3)] == [9, 8, 7]
    with pytest.raises(SubscriberTooSlow, match="more than 3 events behind"):
        await anext(slow)
    assert hub.subscriber_count == 1
    hub.publish_entry(entry("alice", 4))
    assert (await fast_next).tokens == 4
    await cast(Any, fast).aclose()
    assert hub.subscriber_count == 0


async def subscribe(
    schema: strawberry.Schema, context: Context, variables: dict[str, object] | None = None
) -> AsyncIterator[ExecutionResult]:
    stream = await schema.subscribe(BALANCE, variable_values=variables, context_value=context)
    assert not isinstance(stream, ExecutionResult), stream
    return cast(AsyncIterator[ExecutionResult], stream)


async def test_subscribers_asking_the_same_share_one_execution_per_event() -> None:
    schema = build_schema()
    hub = EventHub()
    services = cast(Services, SimpleNamespace(events=hub))
    alice = Context(services=services, principal=Principal("alice", frozenset({Role.USER})))
    alice_again = Context(services=services, principal=Principal("alice", frozenset({Role.USER})))
    staff = Context(services=services, principal=Principal("admin-1", frozenset({Role.ADMIN})))
    same = [await subscribe(schema, alice), await subscribe(schema, alice_again)]
    pro = await subscribe(schema, alice, {"group": "pro"})
    pending = [asyncio.ensure_future(anext(stream)) for stream in [*same, pro]]
    await until(lambda: hub.subscriber_count == 3, seconds=5, what="three subscribers")
    watcher = schema.subscribe(
        'subscription { balanceChanged(userId: "alice") { userId tokens } }',
        context_value=staff,
    )
    staff_stream = cast(AsyncIterator[ExecutionResult], await watcher)
    staff_next = asyncio.ensure_future(anext(staff_stream))
    await until(lambda: hub.subscriber_count == 4, seconds=5, what="the staff's subscriber")

    hub.publish_entry(entry("alice", 41))
    one, two, by_group = [await p for p in pending]
    expected = {"userId": "alice", "offerGroup": "pro", "tokens": 41, "delta": -1}
    assert one.data == two.data == by_group.data == {"balanceChanged": expected}
    assert one.data is two.data, "the same query of the same caller executes once"
    assert by_group.data is not one.data, "other variables execute apart"
    staff_result = await staff_next
    assert staff_result.data == {"balanceChanged": {"userId": "alice", "tokens": 41}}

    # The next event is executed afresh, not served from the last one.
    hub.publish_entry(entry("alice", 40, group="basic"))
    one, two = [await anext(stream) for stream in same]
    assert one.data == {"balanceChanged": {**expected, "offerGroup": "basic", "tokens": 40}}
    assert one.data is two.data
    for stream in [*same, pro, staff_stream]:
        await cast(Any, stream).aclose()
    # graphql-core closes the resolvers' generators in tasks of their own.
    await until(lambda: hub.subscriber_count == 0, seconds=5, what="no subscriber left")
