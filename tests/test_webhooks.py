"""Outbound webhooks and balance alerts: endpoints registered over GraphQL, events derived
from real movements and orders, delivered by real servers to a real receiver that fails,
hangs or goes away, signed as Standard Webhooks (checked with the `standardwebhooks`
package)."""

import asyncio
import random
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

import aiohttp
import orjson
import pytest
from standardwebhooks import Webhook

from tests.api import Api
from tests.conftest import SpawnServer, StartServer
from tests.receiver import Receiver, running_receiver
from tests.support import FakeClock
from tests.test_api import ADMIN, ALICE, buy, grant, upsert
from tests.waits import until, webhooks_settled
from usercredits.models import StreamPosition, WebhookEndpointDocument
from usercredits.server import children
from usercredits.server.embedded import free_port
from usercredits.services import Services
from usercredits.services.errors import InvalidInput
from usercredits.services.outbound.addresses import check_url
from usercredits.services.outbound.alerts import AlertRule, cross
from usercredits.services.outbound.signing import (
    RETRY_CAP,
    RETRY_FOR,
    BadSignature,
    new_secret,
    retry_delay,
    signature_headers,
    verify,
)
from usercredits.services.sweep import expire_due

CREATE_ENDPOINT = """
mutation E($input: WebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url eventTypes enabled } }
}"""
SET_RULE = """
mutation R($input: AlertRuleInput!) {
  setAlertRule(input: $input) { offerGroup lowBalance hysteresis expiringWithinSeconds }
}"""
DELIVERIES = """
query D($endpointId: ID, $status: DeliveryStatus, $first: Int, $after: String) {
  webhookDeliveries(endpointId: $endpointId, status: $status, first: $first, after: $after) {
    edges { cursor node { id endpointId eventId eventType status attempts lastResponseStatus
                          lastError nextAttemptAt createdAt sending } }
    pageInfo { hasNextPage endCursor }
  }
}"""
ENDPOINTS = "{ webhookEndpoints { id url enabled failingSince disabledReason } }"
CONSUME = """
mutation C($input: ConsumeTokensInput!) { consumeTokens(input: $input) { balanceAfter } }"""
FAST = {
    "webhook_retry_base_seconds": 0.05,
    "webhook_poll_seconds": 0.05,
    "webhook_relay_seconds": 0.1,
}


async def endpoint(api: Api, url: str, types: list[str] | None = None) -> tuple[str, str]:
    """Registers `url`; returns its id and secret."""
    data = await api.data(
        CREATE_ENDPOINT, {"input": {"url": url, "eventTypes": types or []}}, as_=ADMIN
    )
    created = data["createWebhookEndpoint"]
    return created["endpoint"]["id"], created["secret"]


async def consume(api: Api, user: str, tokens: int, key: str, group: str = "pro") -> int:
    data = await api.data(
        CONSUME,
        {"input": {"userId": user, "offerGroup": group, "tokens": tokens, "idempotencyKey": key}},
        as_=ADMIN,
    )
    balance: int = data["consumeTokens"]["balanceAfter"]
    return balance


async def deliveries(api: Api, **variables: Any) -> list[dict[str, Any]]:
    data = await api.data(DELIVERIES, {"first": 100, **variables}, as_=ADMIN)
    return [edge["node"] for edge in data["webhookDeliveries"]["edges"]]


async def settled(api: Api, count: int, seconds: float = 15) -> list[dict[str, Any]]:
    """Waits until `count` deliveries exist and none is still to be tried."""
    async with asyncio.timeout(seconds):
        while True:
            found = await deliveries(api)
            if len(found) >= count and all(d["status"] in ("SUCCEEDED", "FAILED") for d in found):
                return found
            await asyncio.sleep(0.05)


async def tried(api: Api, seconds: float = 10) -> list[dict[str, Any]]:
    """Waits until a delivery exists and its first attempt is recorded."""
    async with asyncio.timeout(seconds):
        while True:
            found = await deliveries(api)
            if found and found[0]["lastError"] is not None:
                return found
            await asyncio.sleep(0.05)


async def recorded(api: Api, clock: FakeClock, attempts: int) -> None:
    """Waits until every delivery not yet succeeded has made `attempts` attempts and the
    last one's outcome is recorded."""
    async with asyncio.timeout(10):
        while True:
            found = [d for d in await deliveries(api) if d["status"] != "SUCCEEDED"]
            if found and all(
                d["attempts"] >= attempts
                and not d["sending"]
                and (
                    d["status"] == "FAILED"
                    or datetime.fromisoformat(d["nextAttemptAt"]) > clock.now()
                )
                for d in found
            ):
                return
            await asyncio.sleep(0.05)


def check_signed(received: Receiver, secret: str) -> None:
    """Every request the receiver got verifies with the Standard Webhooks package."""
    hook = Webhook(secret)
    for request in received.requests:
        event = hook.verify(request.body, request.headers)
        assert event["id"] == request.webhook_id


# Pure rules ------------------------------------------------------------------------------


def test_signatures_verify_with_the_standard_webhooks_package() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = '{"id":"evt_1","type":"balance.low","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
    now = int(time.time())
    headers = signature_headers(secret=secret, event_id="evt_1", timestamp=now, body=body)
    assert Webhook(secret).verify(body, headers)["type"] == "balance.low"
    verify(secret=secret, headers=headers, body=body, now=now)
    with pytest.raises(BadSignature, match="no signature matches"):
        verify(secret=secret, headers=headers, body=body.replace("low", "high"), now=now)
    with pytest.raises(BadSignature, match="too far"):
        verify(secret=secret, headers=headers, body=body, now=now + 301)
    with pytest.raises(BadSignature, match="no signature matches"):
        verify(secret=new_secret(), headers=headers, body=body, now=now)


def test_retries_back_off_with_jitter_up_to_a_cap() -> None:
    rng = random.Random(7)
    first = [retry_delay(1, 5, rng).total_seconds() for _ in range(200)]
    assert min(first) >= 3.75 and max(first) <= 6.25 and max(first) - min(first) > 1
    assert 0.75 * 80 <= retry_delay(3, 5, rng).total_seconds() <= 1.25 * 80
    assert retry_delay(40, 5, rng) <= RETRY_CAP * 1.25
    # Three days of retries at the default base is about a dozen attempts.
    waited, attempts = timedelta(0), 0
    while waited < RETRY_FOR:
        attempts += 1
        waited += retry_delay(attempts, 5, random.Random(attempts))
    assert 10 <= attempts <= 16


def test_low_fires_once_per_crossing_and_recovered_needs_the_hysteresis() -> None:
    rule = AlertRule(offer_group="pro", low_balance=10, hysteresis=5)
    low, fired = False, []
    for balance in [20, 9, 11, 8, 14, 15, 16, 9, 10, 3, 30, 12, 10]:
        crossing = cross(rule, low=low, after=balance)
        low = crossing.low
        if crossing.event:
            fired.append((balance, crossing.event))
    assert fired == [
        (9, "balance.low"),
        (16, "balance.recovered"),
        (9, "balance.low"),
        (30, "balance.recovered"),
        (10, "balance.low"),
    ]


DISGUISED_INSIDE = (
    # Spellings the HTTP client normalises to an inside address (IDNA, UTS 46).
    "https://127\u30020\u30020\u30021:8443/hook",  # ideographic full stops
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook",  # fullwidth digits
    "https://\u2460\u2461\u2466.0.0.1/hook",  # circled digits
    "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/hook",  # fullwidth
    # Shorthand IPv4 forms the resolver reads as addresses, and a trailing dot.
    "https://2130706433/hook",
    "https://0x7f.1/hook",
    "https://127.1/hook",
    "https://127.0.0.1./hook",
    "https://LOCALHOST./hook",
    # IPv6 forms that embed an inside IPv4 address.
    "https://[64:ff9b::7f00:1]/hook",  # NAT64
    "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 to the metadata address
    "https://[64:ff9b:1::808:808]/hook",  # local-use NAT64, never public
    "https://[2002:7f00:1::1]/hook",  # 6to4
    "https://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
    "https://[::127.0.0.1]/hook",  # IPv4-compatible
    "https://[::ffff:0:a00:1]/hook",  # IPv4-translated
    "https://[::ffff:7f00:1]/hook",  # IPv4-mapped, hexadecimal
)
"""Receivers that are inside the network in disguise: each is refused in production."""


@pytest.mark.parametrize(
    "url",
    [
        *DISGUISED_INSIDE,
        "https://exa\u200bmple.com/hook",  # a host that does not survive normalisation
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://100.64.0.1/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://0.0.0.0/hook",
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
        "https:///hook",
        "https://example.com:99999/hook",
    ],
)
def test_production_refuses_urls_inside_the_network(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url, production=True)


def test_urls_allowed_where_they_should_be() -> None:
    assert check_url("https://hooks.example.com/in", production=True)
    assert check_url("https://93.184.216.34/in", production=True)
    assert check_url("https://[64:ff9b::5db8:d822]/in", production=True)  # NAT64, public
    assert check_url("https://[2002:5db8:d822::1]/in", production=True)  # 6to4, public
    assert check_url(
        "https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/in", production=True
    )
    assert check_url("http://127.0.0.1:9000/in", production=False)
    with pytest.raises(InvalidInput):
        check_url("javascript:alert(1)", production=False)


# Through the API -------------------------------------------------------------------------


async def test_endpoints_and_rules_are_for_admins_and_checked(api: Api) -> None:
    url = "http://127.0.0.1:9/hook"
    variables = {"input": {"url": url}}
    assert await api.error_code(CREATE_ENDPOINT, variables, as_=ALICE) == "FORBIDDEN"
    assert await api.error_code(ENDPOINTS, as_=ALICE) == "FORBIDDEN"
    bad_type = {"input": {"url": url, "eventTypes": ["balance.lwo"]}}
    assert await api.error_code(CREATE_ENDPOINT, bad_type, as_=ADMIN) == "BAD_USER_INPUT"
    not_a_url = {"input": {"url": "file:///etc/passwd"}}
    assert await api.error_code(CREATE_ENDPOINT, not_a_url, as_=ADMIN) == "BAD_USER_INPUT"
    for rule in (
        {"offerGroup": "pro", "lowBalance": -1},
        {"offerGroup": "pro", "lowBalance": 5, "hysteresis": -2},
        {"offerGroup": "", "lowBalance": 5},
        {"offerGroup": "pro", "lowBalance": 5, "expiringWithinSeconds": 10**9},
    ):
        assert await api.error_code(SET_RULE, {"input": rule}, as_=ADMIN) == "BAD_USER_INPUT"
    assert (await api.data(ENDPOINTS, as_=ADMIN))["webhookEndpoints"] == []
    assert (await api.data("{ alertRules { offerGroup } }", as_=ADMIN))["alertRules"] == []

    endpoint_id, secret = await endpoint(api, url, ["balance.low"])
    assert secret.startswith("whsec_") and len(secret) > 40
    update = """mutation U($id: ID!, $input: WebhookEndpointInput!) {
      updateWebhookEndpoint(id: $id, input: $input) { id url eventTypes enabled } }"""
    changed = await api.data(
        update, {"id": endpoint_id, "input": {"url": url, "enabled": False}}, as_=ADMIN
    )
    assert changed["updateWebhookEndpoint"] == {
        "id": endpoint_id,
        "url": url,
        "eventTypes": [],
        "enabled": False,
    }
    missing = {"id": "000000000000000000000000", "input": {"url": url}}
    assert await api.error_code(update, missing, as_=ADMIN) == "NOT_FOUND"
    delete = "mutation D($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }"
    await api.data(delete, {"id": endpoint_id}, as_=ADMIN)
    assert (await api.data(ENDPOINTS, as_=ADMIN))["webhookEndpoints"] == []
    redeliver = "mutation R($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }"
    assert await api.error_code(redeliver, {"id": "nope"}, as_=ADMIN) == "NOT_FOUND"
    assert await api.error_code(DELIVERIES, {"first": 0}, as_=ADMIN) == "BAD_USER_INPUT"

    rule = await api.data(SET_RULE, {"input": {"offerGroup": "pro", "lowBalance": 5}}, as_=ADMIN)
    assert rule["setAlertRule"] == {
        "offerGroup": "pro",
        "lowBalance": 5,
        "hysteresis": 0,
        "expiringWithinSeconds": 604800,
    }


async def test_each_event_arrives_once_signed_after_failures(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(**FAST)
    api = Api(http, f"{base}/graphql")
    async with running_receiver() as receiver:
        receiver.fail_next = 2
        endpoint_id, secret = await endpoint(api, receiver.url)
        await api.data(
            SET_RULE, {"input": {"offerGroup": "pro", "lowBalance": 10, "hysteresis": 5}}, as_=ADMIN
        )
        await grant(api, "u1", 20, key="g1")
        assert await consume(api, "u1", 12, "c1") == 8  # low
        assert await consume(api, "u1", 8, "c2") == 0  # depleted
        await grant(api, "u1", 14, key="g2")  # 14: not above 15, still low
        await grant(api, "u1", 6, key="g3")  # 20: recovered
        await receiver.wait_for(3)
        await webhooks_settled(api, receiver)  # nothing more comes
    # Each event was accepted once; the failed attempts carried the same webhook-id.
    assert sorted(receiver.types()) == ["balance.depleted", "balance.low", "balance.recovered"]
    ids = [r.webhook_id for r in receiver.accepted]
    assert len(ids) == len(set(ids)) == 3
    assert set(r.webhook_id for r in receiver.requests) == set(ids)
    assert len(receiver.requests) == 5
    check_signed(receiver, secret)
    events = {r.event["type"]: r.event for r in receiver.accepted}
    low = events["balance.low"]
    assert low["data"] == {
        "userId": "u1",
        "offerGroup": "pro",
        "balance": 8,
        "sequence": 2,
        "entryId": low["data"]["entryId"],
        "lowBalance": 10,
        "hysteresis": 5,
    }
    assert events["balance.depleted"]["data"]["sequence"] == 3
    assert events["balance.recovered"]["data"]["balance"] == 20
    assert events["balance.recovered"]["data"]["sequence"] == 5
    assert set(low) == {"id", "type", "timestamp", "data"}

    found = await settled(api, 3)
    assert {d["status"] for d in found} == {"SUCCEEDED"}
    assert sum(d["attempts"] for d in found) == 5
    assert {d["endpointId"] for d in found} == {endpoint_id}
    assert {d["lastResponseStatus"] for d in found} == {204}
    # Pages, newest first.
    first = await api.data(DELIVERIES, {"first": 2}, as_=ADMIN)
    page = first["webhookDeliveries"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await deliveries(api, after=page["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in page["edges"]] + [d["id"] for d in rest] == [
        d["id"] for d in found
    ]
    assert await deliveries(api, status="FAILED") == []


async def test_an_endpoint_gets_what_happens_while_it_is_enabled(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(**FAST)
    api = Api(http, f"{base}/graphql")
    update = """mutation U($id: ID!, $input: WebhookEndpointInput!) {
      updateWebhookEndpoint(id: $id, input: $input) { enabled } }"""
    async with running_receiver() as receiver:
        endpoint_id, _ = await endpoint(api, receiver.url, ["balance.depleted"])
        # Right after the mutation answers, the endpoint's first event is not missed.
        await grant(api, "before", 1, key="g1")
        await consume(api, "before", 1, "c1")
        await receiver.wait_for(1)
        off = {"id": endpoint_id, "input": {"url": receiver.url, "enabled": False}}
        await api.data(update, off, as_=ADMIN)
        await relay_idle()
        # Nothing reads the stream now; enabling the endpoint opens it after this movement.
        await grant(api, "while-off", 1, key="g2")
        await consume(api, "while-off", 1, "c2")
        on = {"id": endpoint_id, "input": {"url": receiver.url, "enabled": True}}
        await api.data(update, on, as_=ADMIN)
        await grant(api, "after", 1, key="g3")
        await consume(api, "after", 1, "c3")
        await receiver.wait_for(2)
        await webhooks_settled(api, receiver)
    assert [r.event["data"]["userId"] for r in receiver.accepted] == ["before", "after"]


async def test_a_storm_of_debits_sends_one_low_and_one_recovered(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(**FAST)
    api = Api(http, f"{base}/graphql")
    async with running_receiver() as receiver:
        await endpoint(api, receiver.url, ["balance.low", "balance.recovered"])
        await api.data(
            SET_RULE,
            {"input": {"offerGroup": "pro", "lowBalance": 50, "hysteresis": 100}},
            as_=ADMIN,
        )
        await grant(api, "u1", 100, key="g0")
        # 70 one-token debits at once cross the threshold once; 40 grants and 40 debits
        # around it after that keep it low (never above 150).
        await asyncio.gather(*(consume(api, "u1", 1, f"d{i}") for i in range(70)))
        storm = [consume(api, "u1", 1, f"s{i}") for i in range(20)]
        storm += [grant(api, "u1", 1, key=f"t{i}") for i in range(20)]
        random.Random(3).shuffle(storm)
        await asyncio.gather(*storm)
        await grant(api, "u1", 200, key="up")
        await receiver.wait_for(2)
        # The marker's debit of 100 from 100 in the ruled group is a balance.low.
        await webhooks_settled(api, receiver, group="pro", tokens=100)
    assert sorted(receiver.types()) == ["balance.low", "balance.recovered"]
    low = next(r.event for r in receiver.accepted if r.event["type"] == "balance.low")
    assert low["data"]["balance"] == 50


async def test_order_and_expiry_events(
    http: aiohttp.ClientSession, start_server: StartServer, services: Services, clock: FakeClock
) -> None:
    base = await start_server(clock=clock, webhook_expiring_scan_seconds=0.1, **FAST)
    api = Api(http, f"{base}/graphql")
    async with running_receiver() as receiver:
        _, secret = await endpoint(api, receiver.url)
        await api.data(
            SET_RULE,
            {"input": {"offerGroup": "pro", "lowBalance": 0, "expiringWithinSeconds": 86400}},
            as_=ADMIN,
        )
        # The scan's markers: lots of a group of their own, within its rule's window, each
        # announced by the first scan after it is granted, none expired in this test.
        window = {
            "offerGroup": "marker-lots",
            "lowBalance": 0,
            "expiringWithinSeconds": 300 * 86400,
        }
        await api.data(SET_RULE, {"input": window}, as_=ADMIN)

        async def scanned() -> None:
            """A scan ran on the clock as it is now."""
            lasts = clock.now() + timedelta(days=200)
            await webhooks_settled(api, receiver, group="marker-lots", expires=lasts, now=clock.now)

        offer = await upsert(api)
        order = await buy(api, offer["id"], as_=ALICE)
        paid = await receiver.wait_for(1)
        assert paid[0].event["type"] == "order.paid"
        assert paid[0].event["data"]["orderId"] == order["id"]
        assert paid[0].event["data"]["amount"] == "9.99"
        # The lot lasts a month: within a day of its end it is announced once, then expires.
        wallet = await api.data("{ wallet { balances { lots { id expires } } } }", as_=ALICE)
        lot = wallet["wallet"]["balances"][0]["lots"][0]
        expires = datetime.fromisoformat(lot["expires"])
        clock.advance(seconds=(expires - clock.now()).total_seconds() - 3 * 86400)
        await scanned()
        assert receiver.types() == ["order.paid"]  # three days before: not yet
        clock.advance(days=2.5)
        await receiver.wait_for(2)
        await scanned()  # scanned again: not announced twice
        assert receiver.types() == ["order.paid", "tokens.expiring"]
        expiring = receiver.accepted[1].event["data"]
        assert expiring["lotId"] == lot["id"] and expiring["tokens"] == order["tokenCount"]
        clock.advance(days=1)
        await expire_due(wallets=services.wallets, orders=services.orders, now=clock.now())
        await receiver.wait_for(5)
        await webhooks_settled(api, receiver, now=clock.now)
    # The expiry's entry takes the balance to 0: low (the rule's threshold is 0), depleted
    # and expired, sent at once (so in any order).
    assert receiver.types()[:2] == ["order.paid", "tokens.expiring"]
    assert sorted(receiver.types()[2:]) == ["balance.depleted", "balance.low", "tokens.expired"]
    expired = next(r.event for r in receiver.accepted if r.event["type"] == "tokens.expired")[
        "data"
    ]
    assert expired["tokens"] == order["tokenCount"] and expired["balance"] == 0
    assert expired["lots"] == [{"lotId": lot["id"], "tokens": order["tokenCount"]}]
    check_signed(receiver, secret)


async def test_two_instances_deliver_each_event_once(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    first = Api(http, f"{await start_server(**FAST)}/graphql")
    second = Api(http, f"{await start_server(**FAST)}/graphql")
    async with running_receiver() as receiver:
        receiver.delay = 0.05
        await endpoint(first, receiver.url, ["balance.depleted"])
        users = [f"u{i}" for i in range(30)]
        await asyncio.gather(*(grant(first, u, 2, key=f"g-{u}") for u in users))
        await asyncio.gather(
            *(consume(first if i % 2 else second, u, 2, f"c-{u}") for i, u in enumerate(users))
        )
        await receiver.wait_for(30)
        await webhooks_settled(first, receiver)
    assert len(receiver.requests) == 30
    assert sorted(r.event["data"]["userId"] for r in receiver.accepted) == sorted(users)
    assert len({r.webhook_id for r in receiver.accepted}) == 30


async def test_a_receiver_down_for_hours_gets_the_backlog_and_three_days_disable_it(
    http: aiohttp.ClientSession, start_server: StartServer, clock: FakeClock
) -> None:
    base = await start_server(clock=clock, **{**FAST, "webhook_retry_base_seconds": 5})
    api = Api(http, f"{base}/graphql")
    async with running_receiver() as receiver:
        receiver.status = 503
        endpoint_id, _ = await endpoint(api, receiver.url, ["balance.depleted"])
        for user in ("a", "b", "c"):
            await grant(api, user, 1, key=f"g{user}")
            await consume(api, user, 1, f"c{user}")
        await receiver.until(lambda: len({r.webhook_id for r in receiver.requests}) == 3)
        await webhooks_settled(api, receiver, now=clock.now)
        assert len(receiver.requests) == 3  # the next attempt waits for its time
        failing = await deliveries(api)
        assert {d["status"] for d in failing} == {"FAILING"}
        assert {d["lastResponseStatus"] for d in failing} == {503}
        assert all(d["nextAttemptAt"] > d["createdAt"] for d in failing)
        for attempts in (2, 3, 4):  # hours pass; every retry fails
            clock.advance(hours=3)
            await recorded(api, clock, attempts)
        assert len(receiver.requests) == 12
        receiver.status = 200
        clock.advance(hours=10)
        await receiver.wait_for(3)
        assert {d["status"] for d in await settled(api, 3)} == {"SUCCEEDED"}
        endpoints = (await api.data(ENDPOINTS, as_=ADMIN))["webhookEndpoints"]
        assert endpoints[0]["failingSince"] is None and endpoints[0]["enabled"] is True

        # Down for good: retried for three days, then FAILED and the endpoint disabled.
        receiver.status = 500
        await grant(api, "d", 1, key="gd")
        await consume(api, "d", 1, "cd")
        await recorded(api, clock, 1)
        for attempts in range(2, 10):  # 80 hours
            clock.advance(hours=10)
            await recorded(api, clock, attempts)
        last = await settled(api, 4)
        assert [d["status"] for d in last].count("FAILED") == 1
        endpoints = (await api.data(ENDPOINTS, as_=ADMIN))["webhookEndpoints"]
        assert endpoints[0]["enabled"] is False
        assert "every delivery failed since" in endpoints[0]["disabledReason"]
        assert "answered 500" in endpoints[0]["disabledReason"]
        # A replay is sent again with the same event id once the receiver is back.
        receiver.status = 204
        failed = next(d for d in last if d["status"] == "FAILED")
        update = """mutation U($id: ID!, $input: WebhookEndpointInput!) {
          updateWebhookEndpoint(id: $id, input: $input) { enabled disabledReason } }"""
        enabled = await api.data(
            update, {"id": endpoint_id, "input": {"url": receiver.url}}, as_=ADMIN
        )
        assert enabled["updateWebhookEndpoint"] == {"enabled": True, "disabledReason": None}
        redeliver = "mutation R($id: ID!) { redeliverWebhook(deliveryId: $id) { status } }"
        replay = await api.data(redeliver, {"id": failed["id"]}, as_=ADMIN)
        assert replay["redeliverWebhook"]["status"] == "PENDING"
        await receiver.wait_for(4)
    assert receiver.accepted[-1].webhook_id == failed["eventId"]


async def test_production_refuses_a_name_that_resolves_inside(
    http: aiohttp.ClientSession, start_server: StartServer, fake_stripe: Any
) -> None:
    from tests.fake_stripe import server_settings

    _, api_base = fake_stripe
    base = await start_server(production=True, **server_settings(api_base), **FAST)
    api = Api(http, f"{base}/graphql")
    refused = ("http://example.com/hook", "https://127.0.0.1/hook", "https://10.0.0.8/hook")
    for url in (*refused, *DISGUISED_INSIDE):
        code = await api.error_code(CREATE_ENDPOINT, {"input": {"url": url}}, as_=ADMIN)
        assert code == "BAD_USER_INPUT", url
    # This machine's own name passes the URL check but resolves to an inside address.
    name = socket.gethostname()
    resolved = {info[4][0] for info in socket.getaddrinfo(name, 443)}
    assert resolved and not any(ip_address(a).is_global for a in resolved), resolved
    async with running_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        await endpoint(api, f"https://{name}:{port}/hook")
        await grant(api, "u1", 1, key="g")
        await consume(api, "u1", 1, "c")
        found = await tried(api)
    assert receiver.requests == []
    assert found[0]["status"] == "FAILING"
    assert "inside the network" in found[0]["lastError"]


@asynccontextmanager
async def counting_listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP port on loopback that counts the connections it gets and closes each."""
    connections: list[int] = []

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await server.wait_closed()


async def relay_position(idle: bool) -> bool:
    found = await StreamPosition.get_pymongo_collection().find_one({"idle": idle})
    return found is not None


async def relay_reading() -> None:
    """Waits until the webhook relay reads the change stream (as enabling an endpoint
    over the API does)."""
    await until(lambda: relay_position(idle=False), seconds=10, what="the relay to read")


async def relay_idle() -> None:
    """Waits until the webhook relay, with no endpoint enabled, has stopped reading the
    stream: it marks its position idle, and the next reader starts from where it opens."""
    await until(lambda: relay_position(idle=True), seconds=10, what="the relay to stop")


async def test_production_checks_the_address_each_connection_is_made_to(
    http: aiohttp.ClientSession, start_server: StartServer, fake_stripe: Any
) -> None:
    """An endpoint stored before its URL would be refused (here written to the database
    directly) is still never connected to: the address is checked at the socket."""
    from tests.fake_stripe import server_settings

    _, api_base = fake_stripe
    base = await start_server(production=True, **server_settings(api_base), **FAST)
    api = Api(http, f"{base}/graphql")
    async with counting_listener() as (port, connections):
        await WebhookEndpointDocument(
            url=f"https://127\u30020\u30020\u30021:{port}/hook",
            secret=new_secret(),
            created_at=datetime.now(UTC),
        ).insert()
        await relay_reading()
        await grant(api, "u1", 1, key="g")
        await consume(api, "u1", 1, "c")
        found = await tried(api)
    assert connections == []
    assert found[0]["status"] == "FAILING"
    assert found[0]["lastError"] == "127.0.0.1 is inside the network"


async def test_a_receiver_that_hangs_is_given_up_on_and_tried_again(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(**{**FAST, "webhook_timeout_seconds": 0.5})
    api = Api(http, f"{base}/graphql")
    async with running_receiver() as receiver:
        await endpoint(api, receiver.url, ["balance.depleted"])
        await grant(api, "u1", 1, key="g")
        # The receiver answers nothing until the consume is answered: a consume that waited
        # for its webhook would never return. Then the first attempt hangs a minute.
        receiver.hang = asyncio.Event()
        receiver.stall_next = 1
        await consume(api, "u1", 1, "c")
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        receiver.hang.set()
        receiver.hang = None
        await receiver.wait_for(1)
        (found,) = await settled(api, 1)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].webhook_id == receiver.requests[1].webhook_id
    assert found["status"] == "SUCCEEDED" and found["attempts"] == 2


async def test_a_server_killed_mid_delivery_loses_nothing(
    http: aiohttp.ClientSession, spawn_server: SpawnServer
) -> None:
    env = {
        "USERCREDITS_WEBHOOK_TIMEOUT_SECONDS": "0.5",
        "USERCREDITS_WEBHOOK_POLL_SECONDS": "0.05",
        "USERCREDITS_WEBHOOK_RELAY_SECONDS": "0.1",
        "USERCREDITS_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    }
    doomed = await spawn_server(**env)
    api = Api(http, f"{doomed.url}/graphql")
    async with running_receiver() as receiver:
        receiver.hang = asyncio.Event()
        await endpoint(api, receiver.url, ["balance.depleted"])
        await grant(api, "u1", 3, key="g")
        await consume(api, "u1", 3, "c")
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        doomed.process.send_signal(signal.SIGKILL)
        await children.stop(doomed.process)
        receiver.hang = None
        survivor = await spawn_server(**env)
        accepted = await receiver.wait_for(1, seconds=20)
        api = Api(http, f"{survivor.url}/graphql")
        found = await settled(api, 1)
    assert len(receiver.requests) == 2
    assert {r.webhook_id for r in receiver.requests} == {accepted[0].webhook_id}
    assert found[0]["status"] == "SUCCEEDED" and found[0]["attempts"] == 2


async def test_webhooks_listen_verifies_and_prints_events(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(**FAST)
    api = Api(http, f"{base}/graphql")
    port = free_port()
    endpoint_id, secret = await endpoint(
        api, f"http://127.0.0.1:{port}/anything", ["balance.depleted"]
    )
    listener = await children.spawn(
        sys.executable,
        "-m",
        "usercredits.server.cli",
        "webhooks",
        "listen",
        "--port",
        str(port),
        "--secret",
        secret,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert listener.stderr is not None and listener.stdout is not None
        banner = await asyncio.wait_for(listener.stderr.readline(), 20)
        assert f"http://127.0.0.1:{port}/" in banner.decode()
        await grant(api, "u1", 2, key="g")
        await consume(api, "u1", 2, "c")
        line = orjson.loads(await asyncio.wait_for(listener.stdout.readline(), 20))
        assert line["type"] == "balance.depleted" and line["data"]["userId"] == "u1"
        assert line["webhookId"] == line["id"]
        forged = {"webhook-id": "x", "webhook-timestamp": str(int(time.time()))}
        async with http.post(
            f"http://127.0.0.1:{port}/",
            data="{}",
            headers={**forged, "webhook-signature": "v1,AAAA"},
        ) as response:
            assert response.status == 400
        refusal = await asyncio.wait_for(listener.stderr.readline(), 10)
        assert "no signature matches" in refusal.decode()
        found = await settled(api, 1)
        assert found[0]["status"] == "SUCCEEDED" and found[0]["endpointId"] == endpoint_id
    finally:
        await children.stop(listener)


async def test_metrics_count_deliveries_by_endpoint_and_outcome(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(**FAST)
    api = Api(http, f"{base}/graphql")
    async with running_receiver() as receiver:
        receiver.fail_next = 1
        endpoint_id, _ = await endpoint(api, receiver.url)
        await grant(api, "u1", 1, key="g")
        await consume(api, "u1", 1, "c")
        await receiver.wait_for(1)
        await settled(api, 1)
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    counts = Counter(
        line.split("outcome=")[1].split('"')[1]
        for line in text.splitlines()
        if line.startswith("usercredits_webhook_deliveries_total")
        and f'endpoint="{endpoint_id}"' in line
        and line.endswith(" 1.0")
    )
    assert counts == {"failed": 1, "succeeded": 1}
