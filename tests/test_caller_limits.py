"""What one signed-in caller can ask of a shared server, each bound through real HTTP or
websockets against a real server: a costly document is refused before it runs, so are
aliases multiplying the payment provider's calls, one caller's operations in flight are
bounded so that another's read is answered at once, websockets are capped per user and per
address, a revoked API key's socket runs nothing more, and every error names its own
request.
"""

import asyncio
import json
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.api import Api, TransportWsClient, sample, token, ws_url
from tests.conftest import SpawnServer, StartServer
from tests.fake_stripe import FakeStripe
from tests.shop import Shop
from tests.support import snapshot
from tests.test_identity import CREATE_KEY, REVOKE_KEY
from usercredits.server.revocation import CHECK_SECONDS
from usercredits.server.settings import Settings
from usercredits.services import Services
from usercredits.services.identity.access import Role

pytestmark = pytest.mark.reliability

ADMIN = token("admin-1", Role.ADMIN)
ALICE = token("alice")  # the one asking for too much
BOB = token("bob")  # everyone else
ENTRY = "id userId offerGroup tokens balanceAfter reason note createdAt"
LEDGER = f"ledger(first: $first) {{ edges {{ cursor node {{ {ENTRY} }} }} }}"


def default(setting: str) -> Any:
    """A setting's default: the tests' servers turn some bounds off unless asked."""
    return Settings.model_fields[setting].default


def aliased(field: str, times: int) -> str:
    return " ".join(f"a{n}: {field}" for n in range(times))


async def seed_ledger(services: Services, user: str, entries: int) -> None:
    for n in range(entries):
        await services.wallets.grant(
            user_id=user, offer_group="pro", tokens=1, idempotency_key=f"seed-{n}"
        )


# --- the cost of an operation -----------------------------------------------------------


async def test_an_operation_costing_more_than_the_limit_is_refused(api: Api) -> None:
    limit = default("max_query_cost")
    costly = f"query L($first: Int) {{ {aliased(LEDGER, 15)} }}"
    body = await api.call(costly, {"first": 500}, as_=ALICE)
    assert body.get("data") is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    # 15 x (ledger + 500 x (edges + cursor + node + 8 fields))
    assert f"'L' would cost {15 * (1 + 500 * 11)}" in error["message"]
    assert f"the limit is {limit}" in error["message"]
    # A negative page (refused when it runs) takes nothing off the others' cost.
    offset = "n: ledger(first: -100000) { edges { cursor } } " + aliased(
        "ledger(first: 500) { edges { cursor node { id } } }", 14
    )
    body = await api.call(f"query {{ {offset} }}", as_=ALICE)
    assert body.get("data") is None and "would cost 28015" in body["errors"][0]["message"]
    # The same document with small pages runs: the cost is counted with the variables.
    small = await api.data(costly, {"first": 5}, as_=ALICE)
    assert small["a0"] == {"edges": []}


async def test_a_refused_operation_runs_nothing(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    api = Api(http, f"{await start_server(max_query_cost=100)}/graphql")
    grant = 'grantTokens(input: {userId: "bob", offerGroup: "pro", tokens: 1, idempotencyKey: "g"})'
    # Each grant: itself, its id and its lots (10 counted) with two fields each = 23.
    mutation = f"mutation {{ {aliased(grant + ' { id lots { lotId tokens } }', 5)} }}"
    before = await snapshot()
    body = await api.call(mutation, as_=ADMIN)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert "would cost 115" in body["errors"][0]["message"]
    assert await snapshot() == before


FLOOD_SECONDS = 2.0
ATTACKERS = 16
"""Requests the flooding caller keeps sending (the bounds let one of them run at a time)."""
READ_BOUND = 0.2


async def test_one_callers_costly_queries_leave_another_callers_read_fast(
    http: aiohttp.ClientSession, spawn_server: SpawnServer, services: Services
) -> None:
    """In a server process of its own, as deployed: the test process's own heap is large
    enough for garbage collections of 0.1 s and more."""
    bounds = ("max_operations_in_flight", "rate_limit_per_second")
    base = (await spawn_server(**{f"USERCREDITS_{b.upper()}": str(default(b)) for b in bounds})).url
    api = Api(http, f"{base}/graphql")
    await seed_ledger(services, "alice", 450)
    # Two pages of 450 entries: 2 x (1 + 450 x 11) = 9,902, just within the limit.
    costly = {
        "query": f"query L($first: Int) {{ {aliased(LEDGER, 2)} }}",
        "variables": {"first": 450},
    }
    assert (
        len((await api.data(costly["query"], costly["variables"], as_=ALICE))["a0"]["edges"]) == 450
    )
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + FLOOD_SECONDS

    async def flood() -> None:
        while time.monotonic() < deadline:
            headers = {"Authorization": f"Bearer {ALICE}"}
            async with http.post(api.url, json=costly, headers=headers) as response:
                statuses[response.status] += 1
                await response.read()
            # Not a busy loop of refusals: a flood of requests is the rate limit's.
            if response.status == 429:
                await asyncio.sleep(0.05)

    async def reads() -> list[float]:
        await asyncio.sleep(0.3)
        seconds = []
        while time.monotonic() < deadline - 0.2:
            started = time.perf_counter()
            assert (await api.data("{ wallet { userId } }", as_=BOB))["wallet"]["userId"] == "bob"
            seconds.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
        return seconds

    *_, read_seconds = await asyncio.gather(*(flood() for _ in range(ATTACKERS)), reads())
    assert max(read_seconds) < READ_BOUND, f"reads took {sorted(read_seconds)[-3:]} s"
    assert statuses[200] > 0 and statuses[429] > 0, statuses


async def test_operations_past_the_callers_bound_get_429_at_once(
    http: aiohttp.ClientSession, start_server: StartServer, services: Services
) -> None:
    api = Api(http, f"{await start_server(max_operations_in_flight=2)}/graphql")
    await seed_ledger(services, "alice", 50)
    pages = {
        "query": f"query L($first: Int) {{ {aliased(LEDGER, 3)} }}",
        "variables": {"first": 50},
    }
    headers = {"Authorization": f"Bearer {ALICE}"}

    async def send() -> tuple[int, dict[str, Any], str | None]:
        async with http.post(api.url, json=pages, headers=headers) as response:
            return response.status, await response.json(), response.headers.get("Retry-After")

    answers = await asyncio.gather(*(send() for _ in range(12)))
    refused = [(body, wait) for status, body, wait in answers if status == 429]
    assert refused and len(refused) < 12, [status for status, _, _ in answers]
    body, wait = refused[0]
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED" and wait == "1"
    assert error["extensions"]["retryAfterSeconds"] == 1 and error["extensions"]["requestId"]
    assert "operations of this caller" in error["message"] and body.get("data") is None
    # Another caller is not counted with alice, and alice runs again once hers have ended.
    assert (await api.data("{ wallet { userId } }", as_=BOB))["wallet"]["userId"] == "bob"
    assert len((await api.data(pages["query"], pages["variables"], as_=ALICE))["a2"]["edges"]) == 50


# --- the payment provider's calls -------------------------------------------------------


async def test_aliases_cannot_multiply_the_payment_providers_calls(shop: Shop) -> None:
    most = default("max_provider_calls")
    fake: FakeStripe = shop.fake
    offer_id = await shop.offer()
    buy = f'createOrder(input: {{offerId: "{offer_id}"}}) {{ order {{ id }} }}'
    refused = [
        f"mutation {{ {aliased('setupPaymentMethod', 15)} }}",
        f"mutation {{ {aliased(buy, 15)} }}",
        f"query {{ {aliased('wallet { paymentMethods { id } }', 15)} }}",
        f"mutation {{ {aliased('setupPaymentMethod', most)} {buy} }}",
    ]
    for document in refused:
        body = await shop.api.call(document, as_=ALICE)
        assert body.get("data") is None
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert f"call the payment provider; the limit is {most} per operation" in error["message"]
    assert (fake.customers, fake.setup_intents, fake.create_requests) == ({}, {}, [])
    # At the limit, each alias makes its call.
    data = await shop.api.data(f"mutation {{ {aliased('setupPaymentMethod', most)} }}", as_=ALICE)
    assert len(set(data.values())) == most == len(fake.setup_intents)


# --- websockets -------------------------------------------------------------------------


async def open_socket(
    http: aiohttp.ClientSession, base: str, user: str, address: str | None = None
) -> tuple[aiohttp.ClientWebSocketResponse, str | None]:
    """A websocket of `user` (through a proxy naming `address` if given) once its
    connection_init is answered, and the reason it was closed with if it was refused."""
    headers = {"X-Forwarded-For": address} if address else {}
    ws = await http.ws_connect(ws_url(base), protocols=["graphql-transport-ws"], headers=headers)
    await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {user}"}})
    answer = await ws.receive(timeout=5)
    return ws, answer.extra if answer.type == aiohttp.WSMsgType.CLOSE else None


async def test_a_users_websockets_past_the_cap_are_refused_and_others_connect(
    start_server: StartServer,
) -> None:
    cap = default("max_sockets_per_user")
    base = await start_server(max_sockets_per_address=default("max_sockets_per_address"))
    # A session of its own: aiohttp's default pool holds 100 connections.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        opened = [await open_socket(http, base, ALICE) for _ in range(cap)]
        assert [refusal for _, refusal in opened] == [None] * cap
        extra, refusal = await open_socket(http, base, ALICE)
        assert (extra.close_code, refusal) == (
            4429,
            f"{cap} websockets are open for this user, the most",
        )
        other = await TransportWsClient.connect(
            http, ws_url(base), {"authorization": f"Bearer {BOB}"}
        )
        await other.subscribe("w", "{ wallet { userId } }")
        assert (await other.receive())["payload"] == {"data": {"wallet": {"userId": "bob"}}}
        # A socket that closes gives its place back.
        await opened.pop()[0].close()
        again, refusal = await open_socket(http, base, ALICE)
        assert refusal is None
        for ws in (*(ws for ws, _ in opened), again, other.ws):
            await ws.close()


async def test_an_addresss_websockets_past_the_cap_are_refused(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(max_sockets_per_address=2, trusted_proxies=["127.0.0.1/32"])
    carol = token("carol")
    first = [await open_socket(http, base, user, "10.0.0.1") for user in (ALICE, BOB)]
    assert [refusal for _, refusal in first] == [None, None]
    third, refusal = await open_socket(http, base, carol, "10.0.0.1")
    assert (third.close_code, refusal) == (4429, "2 websockets are open for this address, the most")
    elsewhere, refusal = await open_socket(http, base, carol, "10.0.0.2")
    assert refusal is None
    for ws in (*(ws for ws, _ in first), third, elsewhere):
        await ws.close()


async def test_an_operation_on_a_revoked_keys_socket_does_not_run(
    http: aiohttp.ClientSession, api: Api, server_url: str
) -> None:
    """Revoked through HTTP, then at once an operation on the key's open socket: refused
    (or the socket already closed), never answered, in the seconds before the periodic
    check would have closed the socket."""
    created = (await api.data(CREATE_KEY, {"name": "worker", "role": "SERVICE"}, as_=ADMIN))[
        "createApiKey"
    ]
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {created['secret']}"}
    )
    read = '{ wallet(userId: "bob") { userId } }'
    await client.subscribe("before", read)
    assert (await client.receive())["payload"] == {"data": {"wallet": {"userId": "bob"}}}
    assert (await client.receive())["type"] == "complete"
    await api.data(REVOKE_KEY, {"id": created["apiKey"]["id"]}, as_=ADMIN)
    await client.subscribe("after", read)
    message = await client.ws.receive(timeout=CHECK_SECONDS / 2)
    if message.type == aiohttp.WSMsgType.TEXT:
        answer = json.loads(message.data)
        assert answer["type"] == "error", answer
        assert answer["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        message = await client.ws.receive(timeout=CHECK_SECONDS / 2)
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4403), message


# --- request ids ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    ["{ nope }", "{ " + "wallet { " * 12 + "userId" + " }" * 13],
    ids=["invalid", "too deep"],
)
async def test_each_refusal_names_its_own_request(
    http: aiohttp.ClientSession, server_url: str, document: str
) -> None:
    for request_id in ("first-request", "second-request", "third-request"):
        headers = {"X-Request-ID": request_id}
        async with http.post(
            f"{server_url}/graphql", json={"query": document}, headers=headers
        ) as response:
            body = await response.json()
        assert response.headers["X-Request-ID"] == request_id
        assert [e["extensions"]["requestId"] for e in body["errors"]] == [request_id], body


# --- the rate limit ---------------------------------------------------------------------


async def test_a_request_past_the_rate_limit_is_answered_429_in_the_type_it_asked_for(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    """A bucket of one that refills in 100 s: the second request is refused before it runs,
    with Retry-After, the RATE_LIMITED error (no `data` in application/graphql-response+json,
    `data: null` in application/json) and its own request id; refused credentials are
    counted once a request."""
    base = await start_server(rate_limit_per_second=0.01, rate_limit_burst=1)
    url, query = f"{base}/graphql", {"query": "{ wallet { userId } }"}
    for media_type, caller in (("application/graphql-response+json", ALICE), (None, BOB)):
        headers = {"Authorization": f"Bearer {caller}"}
        if media_type:
            headers["Accept"] = media_type
        async with http.post(url, json=query, headers=headers) as response:
            assert response.status == 200, await response.text()
        headers["X-Request-ID"] = f"limited-{caller[-6:]}"
        async with http.post(url, json=query, headers=headers) as response:
            assert response.status == 429
            wait = int(response.headers["Retry-After"])
            assert response.content_type == (media_type or "application/json")
            body = json.loads(await response.text())
        assert 90 <= wait <= 100, wait
        error = {
            "message": f"too many requests: retry in {wait} s",
            "extensions": {
                "code": "RATE_LIMITED",
                "retryAfterSeconds": wait,
                "requestId": headers["X-Request-ID"],
            },
        }
        assert body == ({"errors": [error]} if media_type else {"data": None, "errors": [error]})
    forged = {"Authorization": f"Bearer {ALICE[:-4]}AAAA"}
    for _ in range(3):  # the first is refused its credentials, the others their turn too
        async with http.post(url, json=query, headers=forged) as response:
            await response.read()
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    assert sample(text, "usercredits_refusals_total", cause="unauthenticated") == 3
    assert sample(text, "usercredits_refusals_total", cause="rate_limited") == 4
