"""Regression tests of the hardening findings, each through real HTTP or websockets against
a real server: what an anonymous or hostile caller could do before, and what it gets now.

1. Exponential fragment spreads: refused BAD_USER_INPUT at once, the server stays responsive.
2. Production mode never runs the sandbox, GraphiQL, anonymous introspection or suggestions,
   nor a JWT secret published with the service, and warns at start of what it leaves open.
3. /metrics labels come from a closed set; /metrics can require a token.
4. A websocket closes when its token expires; anonymous websockets are refused.
5. Free text, group names and responses are bounded; errors quote a short prefix.
6. A request body that trickles in gets 408.
7. (Another user's ids answer as unknown ids: tests/test_api.py.)
8. JWTs need a numeric `exp`; `aud` and `iss` are checked when configured.
10. Pending orders per user are capped; X-Request-ID is bounded.
"""

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from bson import ObjectId
from graphql import parse

from tests.api import SECRET, Api, TransportWsClient, token, ws_url
from tests.conftest import StartServer, serve_env
from tests.shop import upsert_offer
from tests.support import run_cli, snapshot
from usercredits.api import build_schema
from usercredits.models import OrderDocument
from usercredits.schema.limits import Limits, document_clock, over_limits
from usercredits.server import children
from usercredits.server.settings import LOCAL_JWT_SECRET, Settings
from usercredits.services.identity.access import Role
from usercredits.services.payments import PaymentState, SandboxPaymentClient

pytestmark = pytest.mark.reliability

ADMIN = token("admin-1", Role.ADMIN)
ALICE = token("alice")
STRIPE = {"stripe_secret_key": "sk_test_unused", "stripe_webhook_secret": "whsec_unused"}
GRANT = """mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { id } }"""
CONSUME = """mutation C($input: ConsumeTokensInput!) { consumeTokens(input: $input) { id } }"""
RESERVE = """mutation R($input: ReserveTokensInput!) { reserveTokens(input: $input) { id } }"""


def fragment_bomb(levels: int) -> str:
    """`offers` through `levels` fragments, each spreading the next twice: 2^levels fields
    once expanded, in about 30 bytes a level."""
    fragments = [f"fragment F{i} on Offer {{ id ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Offer {{ id }}")
    return "query { offers { ...F0 } } " + " ".join(fragments)


async def grant(api: Api, user: str, tokens: int, key: str, **extra: Any) -> None:
    variables = {"userId": user, "offerGroup": "pro", "tokens": tokens, "idempotencyKey": key}
    await api.data(GRANT, {"input": {**variables, **extra}}, as_=ADMIN)


# --- 1. fragment bombs ----------------------------------------------------------------


@pytest.mark.parametrize("levels", [10, 30, 100])
def test_measuring_a_fragment_bomb_is_linear(levels: int) -> None:
    document = parse(fragment_bomb(levels))
    # This process's CPU time, not the wall clock, which also counts whatever else the
    # machine runs meanwhile (servers of earlier tests still stopping): expanded, 100
    # levels would be 2^100 fields, so the bound only has to tell linear from exponential.
    started = time.process_time()
    refusal = over_limits(document, Limits())
    elapsed = time.process_time() - started
    assert refusal is not None and f"selects {2 ** (levels + 1) - 1 + 1}" in refusal.message
    assert elapsed < 0.05, f"{levels} levels took {elapsed:.3f}s to measure"


def test_a_document_within_the_limits_is_measured_exactly() -> None:
    document = parse(fragment_bomb(3) + " query Two { a: offers { id } b: offers { id } }")
    assert over_limits(document, Limits()) is None
    tight = Limits(max_fields=15)
    # offers + 2^4 - 1 fragment ids = 16 fields in the first operation.
    assert over_limits(document, tight) is not None
    assert over_limits(document, Limits(max_fields=16)) is None
    assert over_limits(document, Limits(max_aliases=1)) is not None


EXPONENTIAL_WOULD_TAKE_LONGER = 5.0
"""Seconds: far less than expanding 30 levels' 2^31 fields would hold the server."""


@pytest.mark.parametrize("levels", [10, 30, 100])
async def test_a_fragment_bomb_is_refused_at_once_and_the_server_stays_responsive(
    api: Api, http: aiohttp.ClientSession, server_url: str, levels: int
) -> None:
    bomb = fragment_bomb(levels)

    async def healthz() -> float:
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        async with http.get(f"{server_url}/healthz") as response:
            assert response.status == 200
        return time.perf_counter() - started

    async def refused() -> float:
        started = time.perf_counter()
        body = await api.call(bomb)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "fields once its fragments are expanded" in body["errors"][0]["message"]
        assert body.get("data") is None
        return time.perf_counter() - started

    bomb_seconds, health_seconds = await asyncio.gather(refused(), healthz())
    # The bound only has to tell an expansion apart from a loaded machine's slow answer.
    assert bomb_seconds < EXPONENTIAL_WOULD_TAKE_LONGER
    assert health_seconds < EXPONENTIAL_WOULD_TAKE_LONGER


async def test_a_fragment_bomb_over_a_websocket_is_refused(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {ALICE}"}
    )
    await client.subscribe("b", fragment_bomb(30))
    message = await client.receive(wait=2)
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    await client.close()


# --- 2. and 9. production mode ----------------------------------------------------------


async def test_production_without_stripe_refuses_to_start(
    database_uri: str, database_name: str
) -> None:
    env = serve_env(database_uri, database_name, USERCREDITS_PRODUCTION="true")
    for extra in ({}, {"USERCREDITS_PAYMENTS": "sandbox", "USERCREDITS_STRIPE_SECRET_KEY": "x"}):
        code, _, stderr = await run_cli(
            "serve",
            "--port",
            "0",
            env={**{k: v for k, v in env.items() if "STRIPE" not in k}, **extra},
            seconds=30,
        )
        assert code == 2
        assert "USERCREDITS_PRODUCTION is on but payments would use the SANDBOX" in stderr


def production_env(database_uri: str, database_name: str, **overrides: str) -> dict[str, str]:
    """`usercredits serve` in production on the test database, taking payments."""
    stripe = {f"USERCREDITS_{name.upper()}": value for name, value in STRIPE.items()}
    return serve_env(
        database_uri, database_name, USERCREDITS_PRODUCTION="true", **stripe, **overrides
    )


async def test_production_refuses_a_published_jwt_secret(
    database_uri: str, database_name: str
) -> None:
    env = production_env(database_uri, database_name, USERCREDITS_JWT_SECRET=LOCAL_JWT_SECRET)
    code, _, stderr = await run_cli("serve", "--port", "0", env=env, seconds=30)
    assert code == 2
    assert "USERCREDITS_JWT_SECRET is a value published with this service" in stderr


async def test_production_warns_at_start_of_what_it_leaves_open(
    database_uri: str, database_name: str
) -> None:
    env = production_env(database_uri, database_name, USERCREDITS_WORKERS="1")
    server = await children.spawn(
        sys.executable,
        "-m",
        "usercredits.server.cli",
        "serve",
        "--port",
        "0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        banner = await asyncio.wait_for(server.stdout.readline(), 30)
        assert b"UserCredits GraphQL" in banner
    finally:
        await children.stop(server)
    lines = [json.loads(line) for line in (await server.stderr.read()).splitlines()]
    warned = {line["message"].split(" ")[0] for line in lines if line["level"] == "WARNING"}
    assert {
        "USERCREDITS_METRICS_TOKEN",
        "USERCREDITS_API_KEY_PEPPER",
        "USERCREDITS_ALLOWED_ORIGINS",
    } <= warned
    closed = Settings(
        production=True,
        mongodb_uri=database_uri,
        jwt_secret=SECRET,
        metrics_token="m" * 32,
        api_key_pepper="p" * 32,
        allowed_origins=["https://app.example.com"],
        **STRIPE,
    )
    assert closed.production_warnings() == []


async def test_production_hides_the_developer_conveniences(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(production=True, **STRIPE)
    api = Api(http, f"{base}/graphql")
    async with http.get(api.url, headers={"Accept": "text/html"}) as response:
        assert response.status == 404
    introspect = "query { __schema { mutationType { fields { name } } } }"
    anonymous = await api.call(introspect)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert anonymous.get("data") is None
    fields = (await api.data(introspect, as_=ALICE))["__schema"]["mutationType"]["fields"]
    names = {f["name"] for f in fields}
    assert "consumeTokens" in names and "completeSandboxPayment" not in names
    typo = await api.call("query { offerz { id } }")
    assert typo["errors"][0]["message"] == "Cannot query field 'offerz' on type 'Query'."

    opened = {"graphiql": True, "anonymous_introspection": True, "field_suggestions": True}
    relaxed = Api(http, f"{await start_server(production=True, **opened, **STRIPE)}/graphql")
    async with http.get(relaxed.url, headers={"Accept": "text/html"}) as response:
        assert response.status == 200 and "graphiql" in (await response.text()).lower()
    assert (await relaxed.data(introspect))["__schema"]["mutationType"]["fields"]
    typo = await relaxed.call("query { offerz { id } }")
    assert "Did you mean 'offer', 'offers'" in typo["errors"][0]["message"]


# --- 3. metrics ---------------------------------------------------------------------------


async def test_metrics_labels_are_a_closed_set(
    api: Api, http: aiohttp.ClientSession, server_url: str
) -> None:
    async def page() -> str:
        async with http.get(f"{server_url}/metrics") as response:
            return await response.text()

    await api.data("query { offers { id } }")
    before = len(await page())
    for i in range(200):
        await api.call(f"query {{ field_{i}_{'x' * 30} }}")
        await api.call(f"query {{ ...Frag{i} }} fragment Frag{i} on Query {{ offers {{ id }} }}")
    text = await page()
    assert "field_1" not in text and "Frag1" not in text
    assert 'operation="invalid"' in text and 'operation="offers"' in text
    assert len(text) - before < 2_000, "400 distinct documents grew /metrics"


async def test_metrics_can_require_a_token(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(metrics_token="scrape-me")
    async with http.get(f"{base}/metrics") as response:
        assert response.status == 401
    async with http.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}) as response:
        assert response.status == 401
    headers = {"Authorization": "Bearer scrape-me"}
    async with http.get(f"{base}/metrics", headers=headers) as response:
        assert response.status == 200 and "usercredits_graphql_operations" in await response.text()


# --- 4. websockets ------------------------------------------------------------------------


async def test_a_websocket_closes_when_its_token_expires(
    api: Api, http: aiohttp.ClientSession, server_url: str
) -> None:
    now = int(time.time())
    short = jwt.encode({"sub": "alice", "iat": now, "exp": now + 3}, SECRET, algorithm="HS256")
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {short}"}
    )
    await client.subscribe("w", "query { wallet { userId } }")
    assert (await client.receive())["payload"] == {"data": {"wallet": {"userId": "alice"}}}
    assert await client.receive() == {"id": "w", "type": "complete"}
    await client.subscribe("b", "subscription { balanceChanged { tokens } }")
    await grant(api, "alice", 5, "before-expiry")
    assert (await client.receive())["payload"]["data"]["balanceChanged"]["tokens"] == 5
    message = await client.ws.receive(timeout=6)
    assert (message.type, message.data, message.extra) == (
        aiohttp.WSMsgType.CLOSE,
        4401,
        "token expired: reconnect with a fresh token",
    ), message
    assert time.time() >= now + 3


async def test_anonymous_websockets_are_refused(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    ws = await http.ws_connect(ws_url(server_url), protocols=["graphql-transport-ws"])
    await ws.send_json({"type": "connection_init", "payload": {}})
    message = await ws.receive(timeout=5)
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4403), message
    assert message.extra == 'sign in: send {"authorization": "Bearer <token>"} in connection_init'
    await ws.close()


# --- 5. free text and responses -----------------------------------------------------------


async def test_free_text_and_group_names_are_bounded(api: Api) -> None:
    await grant(api, "alice", 10, "g")
    before = await snapshot()
    long_group = "g" * 201
    attempts = [
        (CONSUME, {"offerGroup": "pro", "tokens": 1, "idempotencyKey": "a", "reason": "r" * 501}),
        (CONSUME, {"offerGroup": long_group, "tokens": 1, "idempotencyKey": "b"}),
        (RESERVE, {"offerGroup": long_group, "tokens": 1, "idempotencyKey": "c"}),
        (CONSUME, {"offerGroup": "pro", "tokens": 1, "idempotencyKey": "k" * 201}),
    ]
    for query, variables in attempts:
        body = await api.call(query, {"input": variables}, as_=ALICE)
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", body
        assert len(error["message"]) < 200, "the error echoed the whole value"
    assert await snapshot() == before
    # At the limits they are taken.
    await api.data(
        CONSUME,
        {
            "input": {
                "offerGroup": "pro",
                "tokens": 1,
                "idempotencyKey": "k" * 200,
                "reason": "r" * 500,
            }
        },
        as_=ALICE,
    )


async def test_an_oversized_response_is_an_error(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    api = Api(http, f"{await start_server(max_response_bytes=10_000)}/graphql")
    for i in range(30):
        await grant(api, "alice", 1, f"g{i}", reason="n" * 400)
    small = await api.data("query { ledger(first: 5) { edges { node { note } } } }", as_=ALICE)
    assert len(small["ledger"]["edges"]) == 5
    body = await api.call("query { ledger(first: 30) { edges { node { note } } } }", as_=ALICE)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "exceed 10000 bytes" in body["errors"][0]["message"]


# --- 6. slow bodies -----------------------------------------------------------------------


async def test_a_trickling_body_gets_408(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(request_body_seconds=1)
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.perf_counter()
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    await writer.drain()

    async def trickle() -> None:
        for _ in range(20):
            await asyncio.sleep(0.25)
            writer.write(b" ")
            await writer.drain()

    feeder = asyncio.create_task(trickle())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        feeder.cancel()
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    assert time.perf_counter() - started < 3
    async with http.get(f"{base}/healthz") as response:
        assert response.status == 200


# --- 8. JWT claims ------------------------------------------------------------------------


def claims_token(**claims: Any) -> str:
    return jwt.encode({"sub": "alice", **claims}, SECRET, algorithm="HS256")


async def test_tokens_need_a_numeric_exp(
    api: Api, http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    later = int(time.time()) + 600
    wallet = "query { wallet { userId } }"
    for bad in (claims_token(), claims_token(exp=str(later)), claims_token(exp=later, iat="0")):
        assert await api.error_code(wallet, as_=bad) == "UNAUTHENTICATED"
    assert (await api.data(wallet, as_=claims_token(exp=later)))["wallet"]["userId"] == "alice"
    local = Api(http, f"{await start_server(jwt_require_exp=False)}/graphql")
    assert (await local.data(wallet, as_=claims_token()))["wallet"]["userId"] == "alice"


async def test_audience_and_issuer_are_checked_when_configured(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    api = Api(
        http, f"{await start_server(jwt_audience='credits', jwt_issuer='https://id.test')}/graphql"
    )
    later = int(time.time()) + 600
    wallet = "query { wallet { userId } }"
    refused = [
        claims_token(exp=later),
        claims_token(exp=later, aud="credits"),
        claims_token(exp=later, aud="other", iss="https://id.test"),
        claims_token(exp=later, aud="credits", iss="https://evil.test"),
    ]
    for bad in refused:
        assert await api.error_code(wallet, as_=bad) == "UNAUTHENTICATED"
    good = claims_token(exp=later, aud="credits", iss="https://id.test")
    assert (await api.data(wallet, as_=good))["wallet"]["userId"] == "alice"


# --- 10. pending orders and request ids ---------------------------------------------------


async def test_pending_orders_per_user_are_capped_oldest_first(
    http: aiohttp.ClientSession, start_server: StartServer, sandbox: SandboxPaymentClient
) -> None:
    api = Api(http, f"{await start_server(max_pending_orders=3)}/graphql")
    offer_id = await upsert_offer(
        api, tokenCount=10, prices=[{"amount": "1.00", "currency": "USD"}]
    )
    created = []
    for _ in range(5):
        payload = await api.data(
            "mutation C($i: CreateOrderInput!) { createOrder(input: $i) { order { id } } }",
            {"i": {"offerId": offer_id}},
            as_=ALICE,
        )
        created.append(payload["createOrder"]["order"]["id"])
    orders = (await api.data("query { orders(first: 10) { edges { node { id status } } } }",
                             as_=ALICE))["orders"]["edges"]  # fmt: skip
    status = {edge["node"]["id"]: edge["node"]["status"] for edge in orders}
    assert [status[i] for i in created] == ["CANCELED", "CANCELED", "PENDING", "PENDING", "PENDING"]
    for order_id in created:
        order = await OrderDocument.get(ObjectId(order_id))
        assert order is not None and order.payment_intent_id is not None
        payment = await sandbox.get_payment(order.payment_intent_id)
        expected = PaymentState.CANCELED if order_id in created[:2] else PaymentState.PENDING
        assert payment.state is expected


async def test_request_ids_are_bounded(http: aiohttp.ClientSession, server_url: str) -> None:
    async with http.get(f"{server_url}/healthz", headers={"X-Request-ID": "job-42.a:b"}) as r:
        assert r.headers["X-Request-ID"] == "job-42.a:b"
    for hostile in ("x" * 8000, "a b", 'x"}{"forged": 1'):
        async with http.get(f"{server_url}/healthz", headers={"X-Request-ID": hostile}) as r:
            echoed = r.headers["X-Request-ID"]
            assert echoed != hostile and len(echoed) == 32, echoed
    body = json.dumps({"query": "{ offers { id } }"})
    async with http.post(f"{server_url}/graphql", data=body, headers={
        "Content-Type": "application/json", "X-Request-ID": "y" * 200}) as r:  # fmt: skip
        assert len(r.headers["X-Request-ID"]) == 32


async def test_a_document_past_its_validation_budget_is_refused() -> None:
    """The budget is spent (a negative one is spent before validation starts): the rules
    stop at the first node and the document gets one clear error."""
    schema = build_schema(limits=Limits(budget_seconds=-1.0))
    result = await schema.execute("query { offers { id } }")
    assert result.errors is not None and result.data is None
    assert [e.message for e in result.errors] == [
        "the document took too long to validate; send a smaller document"
    ]
    relaxed = build_schema(limits=Limits(budget_seconds=5.0))
    assert (await relaxed.execute("query { __typename }")).data == {"__typename": "Query"}


async def test_a_document_over_the_token_limit_is_not_parsed() -> None:
    """Parsing stops at the limit, for queries and for subscriptions alike."""
    schema = build_schema(limits=Limits(max_tokens=12))
    fields = " ".join(["__typename"] * 12)
    for document in (f"query {{ {fields} }}", f"subscription {{ {fields} }}"):
        result = await schema.execute(document)
        assert result.errors is not None and result.data is None
        assert [e.message for e in result.errors] == [
            "Syntax Error: Document contains more than 12 tokens. Parsing aborted."
        ]
    assert (await schema.execute("query { __typename }")).data == {"__typename": "Query"}


def test_a_garbage_collection_is_not_counted_against_a_document() -> None:
    """A full collection of a large heap, which may start in the middle of any validation,
    costs the document nothing: on a busy test process it once spent a small mutation's
    whole budget."""
    heap = [[i] for i in range(300_000)]
    for cell in heap:
        cell.append(cell)
    cpu, clock = time.thread_time(), document_clock()
    gc.collect()
    collecting = time.thread_time() - cpu
    assert collecting > 0.01, "the heap is large enough for a measurable collection"
    assert document_clock() - clock < collecting / 5
    del heap


async def test_the_command_line_applies_the_configured_input_limits(
    tmp_path: Path, database_uri: str, database_name: str
) -> None:
    catalogue = tmp_path / "offers.yaml"
    catalogue.write_text(
        "offers:\n"
        "  - key: long-group\n"
        "    name: Pack\n"
        "    kind: TOKENS\n"
        "    offerGroup: a-rather-long-group\n"
        "    tokenCount: 10\n"
        '    prices: {USD: "1.00"}\n'
        "    cycle: ONCE\n"
    )
    env = {
        **os.environ,
        "USERCREDITS_MONGODB_URI": database_uri,
        "USERCREDITS_DATABASE": database_name,
        "USERCREDITS_MAX_GROUP_LENGTH": "8",
    }
    code, _, stderr = await run_cli("offers", "import", str(catalogue), "--dry-run", env=env)
    assert code == 1
    assert "offerGroup must be a non-empty name of at most 8 characters" in stderr
