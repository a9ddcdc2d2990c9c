"""Attacks on the API, each refused the way the contract says, with nothing leaked or changed.

- Bad JWTs (forged, expired, `alg: none`, another key, edited roles, an unknown role, no
  `sub`, ...): UNAUTHENTICATED over HTTP for everything but reading offers, 4403 on a
  websocket (4401 for the expired one, which a fresh token would fix), and the victim's
  wallet, orders and ledger untouched.
- Another user's ids in every argument that takes one: FORBIDDEN, nothing changed (the
  cases tests/test_api.py and tests/test_subscriptions.py already cover are not repeated).
- Operator injection through ids: `{"$ne": null}` is a bad variable, and as a string it
  names no one.
- Introspection and field-depth bombs: BAD_USER_INPUT and no data; GraphiQL's own
  introspection query still works.
- More subscriptions on one websocket than allowed: the extra one is refused, the others
  keep running.
- Oversized request bodies and websocket messages: 413 / 1009, and the server still answers.
"""

import base64
import contextlib
import json
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest
from graphql import get_introspection_query
from jwt.warnings import InsecureKeyLengthWarning

from tests.api import SECRET, Api, TransportWsClient, token, ws_url
from tests.conftest import StartServer
from tests.shop import upsert_offer
from tests.support import snapshot
from tests.waits import metric, subscribers
from usercredits.services.identity.access import Role

pytestmark = pytest.mark.reliability

ADMIN = token("admin-1", Role.ADMIN)
SERVICE = token("backend-1", Role.SERVICE)
ALICE = token("alice")  # the victim
MALLORY = token("mallory")  # the attacker, with a genuine user token

GRANT = """mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { id } }"""
WALLET = """query W($user: ID) { wallet(userId: $user) { userId
  balances { offerGroup tokens reserved } orders { id status } } }"""
LEDGER = """query L($user: ID) { ledger(userId: $user) { edges { node { id userId tokens } } } }"""
BALANCE = """subscription B($user: ID) { balanceChanged(userId: $user) {
  userId offerGroup tokens delta reason } }"""
ORDERS = """subscription O($user: ID) { orderUpdated(userId: $user) { id userId status } }"""

Capsys = pytest.CaptureFixture[str]


def report(capsys: Capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[security] {line}")


# --- hand-made JWTs ---------------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(claims: dict[str, Any]) -> str:
    return b64url(json.dumps(claims, separators=(",", ":")).encode())


def unpadded_json(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def signed(claims: dict[str, Any], *, key: str = SECRET, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        # HS512 with the (HS256-sized) server secret is the point of one case.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=algorithm)


def escalated(genuine: str) -> str:
    """A genuine user token whose payload now says admin, its signature kept."""
    header, payload, signature = genuine.split(".")
    claims = unpadded_json(payload)
    return f"{header}.{segment({**claims, 'roles': ['admin']})}.{signature}"


def forged(genuine: str) -> str:
    """The same header and payload with a signature made up by the attacker."""
    header, payload, _ = genuine.split(".")
    return f"{header}.{payload}.{b64url(b'not the server signature, 32 by')}"


def bad_tokens() -> dict[str, str]:
    now = int(time.time())
    admin_claims = {"sub": "admin-1", "roles": ["admin"], "iat": now, "exp": now + 3600}
    return {
        "forged signature": forged(signed(admin_claims)),
        "expired": signed(
            {"sub": "admin-1", "roles": ["admin"], "iat": now - 7200, "exp": now - 60}
        ),
        "alg none": f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(admin_claims)}.",
        "wrong key": signed(admin_claims, key="someone-elses-secret-that-is-long-enough!"),
        "role escalation": escalated(MALLORY),
        "unknown role": signed({"sub": "mallory", "roles": ["superuser"]}),
        "no sub": signed({"roles": ["admin"], "exp": now + 3600}),
        # A few more a careless decoder would take.
        "HS512 with the secret": signed(admin_claims, algorithm="HS512"),
        "not yet valid": signed({**admin_claims, "nbf": now + 3600}),
        "empty sub": signed({**admin_claims, "sub": ""}),
        "numeric sub": signed({**admin_claims, "sub": 42}),
        "roles as a string": signed({"sub": "admin-1", "roles": "admin"}),
        "role in another case": signed({**admin_claims, "roles": ["Admin"]}),
        "exp as a string": signed({**admin_claims, "exp": str(now + 3600)}),
        "exp past the year 9999": signed({**admin_claims, "exp": 10**30}),
        "exp a huge float": signed({**admin_claims, "exp": 1e300}),
        "garbage": "a.b.c",
    }


BAD_TOKENS = bad_tokens()


# --- a victim with something to steal ---------------------------------------------------


@dataclass
class Victim:
    offer_id: str
    hidden_offer_id: str
    order_id: str
    reservation_id: str


async def victim(api: Api) -> Victim:
    """Alice: 50 tokens in `pro` (5 of them reserved) and a pending order; plus an offer only
    admins (or `gold` holders) may see."""
    offer = await upsert_offer(api)
    hidden = await upsert_offer(api, name="VIP", offerGroup="vip", unlockedBy=["gold"])
    order = (
        await api.data(
            "mutation B($id: ID!) { createOrder(input: {offerId: $id}) { order { id } } }",
            {"id": offer},
            as_=ALICE,
        )
    )["createOrder"]["order"]["id"]
    grant = {"userId": "alice", "offerGroup": "pro", "tokens": 50, "idempotencyKey": "seed"}
    await api.data(GRANT, {"input": grant}, as_=ADMIN)
    reservation = (
        await api.data(
            """mutation { reserveTokens(input: {offerGroup: "pro", tokens: 5,
               idempotencyKey: "hold"}) { id } }""",
            as_=ALICE,
        )
    )["reserveTokens"]["id"]
    return Victim(offer, hidden, order, reservation)


def operations(v: Victim) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every root field but `offers`/`offer`, aimed at alice or at the caller itself."""
    steal = {"userId": "alice", "offerGroup": "pro", "tokens": 10, "idempotencyKey": "steal"}
    return {
        "wallet(alice)": (WALLET, {"user": "alice"}),
        "wallet(own)": (WALLET, {}),
        "ledger(alice)": (LEDGER, {"user": "alice"}),
        "orders(alice)": ('query { orders(userId: "alice") { edges { node { id } } } }', {}),
        "order(id)": ("query Q($id: ID!) { order(id: $id) { id userId } }", {"id": v.order_id}),
        "creditWarnings(alice)": ('query { creditWarnings(userId: "alice") { kind } }', {}),
        "consumeTokens(alice)": (
            "mutation C($i: ConsumeTokensInput!) { consumeTokens(input: $i) { id } }",
            {"i": steal},
        ),
        "reserveTokens(alice)": (
            "mutation R($i: ReserveTokensInput!) { reserveTokens(input: $i) { id } }",
            {"i": steal},
        ),
        "commitReservation": (
            "mutation C($id: ID!) { commitReservation(id: $id) { id } }",
            {"id": v.reservation_id},
        ),
        "releaseReservation": (
            "mutation R($id: ID!) { releaseReservation(id: $id) { id } }",
            {"id": v.reservation_id},
        ),
        "grantTokens": (GRANT, {"input": {**steal, "userId": "mallory"}}),
        "upsertOffer": (
            """mutation { upsertOffer(input: {name: "Free", kind: TOKENS, offerGroup: "pro",
               tokenCount: 1000000, prices: [{amount: "0", currency: "USD"}],
               cycle: ONCE}) { id } }""",
            {},
        ),
        "archiveOffer": (
            "mutation A($id: ID!) { archiveOffer(id: $id) { id } }",
            {"id": v.offer_id},
        ),
        "createOrder": (
            "mutation B($id: ID!) { createOrder(input: {offerId: $id}) { order { id } } }",
            {"id": v.offer_id},
        ),
        "refreshOrder": (
            "mutation F($id: ID!) { refreshOrder(id: $id) { status } }",
            {"id": v.order_id},
        ),
        "cancelOrder": (
            "mutation X($id: ID!) { cancelOrder(id: $id) { status } }",
            {"id": v.order_id},
        ),
        "completeSandboxPayment": (
            "mutation P($id: ID!) { completeSandboxPayment(orderId: $id) { status } }",
            {"id": v.order_id},
        ),
    }


async def raw_post(
    http: aiohttp.ClientSession, url: str, query: str, variables: dict[str, Any], bearer: str
) -> tuple[int, str]:
    async with http.post(
        url,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}"},
    ) as response:
        return response.status, await response.text()


def assert_no_data(body: dict[str, Any]) -> None:
    data = body.get("data")
    assert data is None or all(value is None for value in data.values()), body


# --- JWTs -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_a_bad_jwt_is_unauthenticated_everywhere_and_changes_nothing(
    api: Api, http: aiohttp.ClientSession, server_url: str, kind: str, capsys: Capsys
) -> None:
    bad = BAD_TOKENS[kind]
    v = await victim(api)
    before = await snapshot()
    sent = 0
    for name, (query, variables) in operations(v).items():
        status, text = await raw_post(http, api.url, query, variables, bad)
        sent += 1
        assert status == 200, (name, text)
        body = json.loads(text)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", (name, body)
        assert_no_data(body)
        assert SECRET not in text

    # Reading offers stays open, but only as what an anonymous caller may see.
    status, text = await raw_post(
        http,
        api.url,
        "query Q($id: ID!) { offers { id name } offer(id: $id) { id } }",
        {"id": v.hidden_offer_id},
        bad,
    )
    body = json.loads(text)
    assert status == 200 and not body.get("errors"), body
    assert [o["name"] for o in body["data"]["offers"]] == ["Pro"]
    assert body["data"]["offer"] is None  # an admin would see it: no escalation

    # The same token on a websocket: closed before any subscription, with 4401 (come back
    # with a fresh token) when only its expiry is wrong, else 4403 (forbidden).
    close_code = 4401 if kind == "expired" else 4403
    ws = await http.ws_connect(ws_url(server_url), protocols=["graphql-transport-ws"])
    await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {bad}"}})
    closed = await ws.receive(timeout=5)
    assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, close_code), closed
    await ws.close()

    assert await snapshot() == before
    wallet = (await api.data(WALLET, {"user": "alice"}, as_=ADMIN))["wallet"]
    assert wallet["balances"] == [{"offerGroup": "pro", "tokens": 45, "reserved": 5}]
    assert wallet["orders"] == [{"id": v.order_id, "status": "PENDING"}]
    report(
        capsys,
        f"jwt '{kind}': {sent} operations refused UNAUTHENTICATED, offers served as anonymous, "
        f"websocket closed {close_code}; alice's wallet, orders and ledger unchanged; "
        "lost: nothing",
    )


async def test_a_signed_token_with_an_impossible_exp_is_told_why(api: Api) -> None:
    """Validly signed, so only the date is wrong: the answer says which, not a 500."""
    claims = {"sub": "alice", "roles": ["user"]}
    for exp, message in (
        (10**30, "the token's `exp` must be at most 253402300799 (the end of the year 9999)"),
        ("9999999999", "the token's `exp` must be a number of seconds"),
    ):
        body = await api.call("query { wallet { userId } }", as_=signed({**claims, "exp": exp}))
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
        assert body["errors"][0]["message"] == message


# --- other users' ids -------------------------------------------------------------------


async def test_another_users_ids_are_forbidden_and_change_nothing(
    api: Api, http: aiohttp.ClientSession, server_url: str, capsys: Capsys
) -> None:
    """What tests/test_api.py does not already try: reserving and committing for alice,
    admin-only order actions by a service, and alice's order events. (wallet, ledger,
    orders, creditWarnings, order, refreshOrder, cancelOrder, consumeTokens,
    releaseReservation, completeSandboxPayment by another user, and balanceChanged, are
    covered by test_api.py::test_role_rules, ::test_other_users_orders_and_reservations_are_
    off_limits and test_subscriptions.py::test_a_user_cannot_subscribe_to_another_users_
    balance.)"""
    v = await victim(api)
    before = await snapshot()
    attempts: list[tuple[str, str, dict[str, Any], str]] = [
        (
            "reserveTokens(userId: alice)",
            "mutation R($i: ReserveTokensInput!) { reserveTokens(input: $i) { id } }",
            {"i": {"userId": "alice", "offerGroup": "pro", "tokens": 40, "idempotencyKey": "r"}},
            MALLORY,
        ),
        # cancelOrder and completeSandboxPayment of someone else's order need admin.
        (
            "cancelOrder(alice's) as a service",
            "mutation X($id: ID!) { cancelOrder(id: $id) { status } }",
            {"id": v.order_id},
            SERVICE,
        ),
        (
            "completeSandboxPayment(alice's) as a service",
            "mutation P($id: ID!) { completeSandboxPayment(orderId: $id) { status } }",
            {"id": v.order_id},
            SERVICE,
        ),
        (
            "grantTokens as a service",
            GRANT,
            {"input": {"userId": "alice", "offerGroup": "pro", "tokens": 1, "idempotencyKey": "x"}},
            SERVICE,
        ),
        (
            "ledger(alice) with an offerGroup",
            'query { ledger(userId: "alice", offerGroup: "pro") { edges { cursor } } }',
            {},
            MALLORY,
        ),
        (
            "wallet(alice) nested orders",
            'query { wallet(userId: "alice") { orders(status: PENDING) { id } } }',
            {},
            MALLORY,
        ),
    ]
    for name, query, variables, caller in attempts:
        status, text = await raw_post(http, api.url, query, variables, caller)
        body = json.loads(text)
        assert status == 200 and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (
            name,
            body,
        )
        assert_no_data(body)

    # Alice's reservation is not even there for mallory: the answer of an unknown id.
    status, text = await raw_post(
        http,
        api.url,
        "mutation C($id: ID!) { commitReservation(id: $id, tokens: 5) { id } }",
        {"id": v.reservation_id},
        MALLORY,
    )
    body = json.loads(text)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
    assert body["errors"][0]["message"] == f"reservation {v.reservation_id} does not exist"
    assert_no_data(body)

    # Alice's order events, asked for by mallory: FORBIDDEN, then nothing of hers arrives.
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {MALLORY}"}
    )
    await client.subscribe("o", ORDERS, {"user": "alice"})
    refused = await client.receive()
    assert refused["type"] == "next" and refused["payload"]["data"] is None, refused
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await client.receive() == {"id": "o", "type": "complete"}
    await client.subscribe("b", BALANCE, {"user": "alice"})
    assert (await client.receive())["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await client.receive() == {"id": "b", "type": "complete"}

    assert await snapshot() == before
    # Alice's own activity now: none of it may reach mallory's socket.
    await api.data(
        "mutation X($id: ID!) { cancelOrder(id: $id) { status } }", {"id": v.order_id}, as_=ALICE
    )
    await client.silence(0.7)
    await client.close()
    report(
        capsys,
        f"{len(attempts)} cross-user HTTP operations and 2 cross-user subscriptions refused "
        "FORBIDDEN; no event of alice reached mallory; database unchanged; lost: nothing",
    )


async def test_operator_injection_through_ids_finds_no_one(
    api: Api, http: aiohttp.ClientSession, server_url: str, capsys: Capsys
) -> None:
    v = await victim(api)
    before = await snapshot()
    operators: list[Any] = [{"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, ["alice"]]
    for value in operators:
        for query, variables in (
            ("query Q($id: ID!) { order(id: $id) { id } }", {"id": value}),
            (WALLET, {"user": value}),
            (LEDGER, {"user": value}),
        ):
            code = await api.error_code(query, variables, as_=MALLORY)
            assert code == "BAD_USER_INPUT", (value, code)
    # As strings, operators are just names nobody has: even an admin finds nothing of alice's.
    for name in ('{"$ne": null}', '{"$gt": ""}', ".*", "alice' || '1'=='1"):
        ledger = await api.data(LEDGER, {"user": name}, as_=ADMIN)
        assert ledger["ledger"]["edges"] == [], name
        order = await api.data(
            "query Q($id: ID!) { order(id: $id) { id } }", {"id": name}, as_=ADMIN
        )
        assert order["order"] is None
    assert await snapshot() == before
    assert v.order_id
    report(
        capsys,
        f"{len(operators) * 3} operator-shaped ids refused, 8 operator strings matched nothing; "
        "lost: nothing",
    )


# --- query bombs ------------------------------------------------------------------------


def nested(fields: list[str], leaf: str) -> str:
    inner = leaf
    for field in reversed(fields):
        inner = f"{field} {{ {inner} }}"
    return inner


BOMBS = {
    "introspection ofType chain": "query { __schema { types { fields { type { "
    + nested(["ofType"] * 30, "name")
    + " } } } } }",
    "introspection fields/type cycle": "query { __schema { types { "
    + nested(["fields", "type"] * 8, "name")
    + " } } }",
    "introspection __type cycle": 'query { __type(name: "Query") { '
    + nested(["fields", "type", "fields", "type", "interfaces", "fields", "args", "type"], "name")
    + " } }",
    "field depth 40": "query { " + nested(["wallet", "orders", "history"] * 13, "status") + " }",
    "field depth 600 (parser)": "query { " + nested(["a"] * 600, "b") + " }",
}


@pytest.mark.parametrize("name", list(BOMBS))
async def test_query_bombs_are_refused_without_data(
    api: Api, http: aiohttp.ClientSession, name: str, capsys: Capsys
) -> None:
    started = time.perf_counter()
    for caller in (None, ADMIN):
        body = await api.call(BOMBS[name], as_=caller)
        assert body.get("errors"), f"{name} was answered: {json.dumps(body)[:300]}"
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body["errors"]
        assert body.get("data") is None
    async with http.get(api.url.replace("/graphql", "/healthz")) as response:
        assert response.status == 200
    report(
        capsys,
        f"bomb '{name}' ({len(BOMBS[name])} chars) refused BAD_USER_INPUT twice in "
        f"{time.perf_counter() - started:.3f}s, no data; server healthy",
    )


async def test_graphiqls_introspection_still_works(api: Api, capsys: Capsys) -> None:
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    schema = (await api.data(query))["__schema"]
    names = {t["name"] for t in schema["types"]}
    assert {"Query", "Wallet", "LedgerEntry", "BalanceEvent"} <= names
    assert schema["queryType"]["name"] == "Query"
    report(capsys, f"GraphiQL introspection answered: {len(names)} types")


# --- subscriptions per connection -------------------------------------------------------


async def test_too_many_subscriptions_on_one_websocket(
    http: aiohttp.ClientSession, start_server: StartServer, capsys: Capsys
) -> None:
    base = await start_server(max_subscriptions_per_connection=3)
    api = Api(http, f"{base}/graphql")
    client = await TransportWsClient.connect(
        http, ws_url(base), {"authorization": f"Bearer {ALICE}"}
    )
    for sid in ("1", "2", "3"):
        await client.subscribe(sid, BALANCE)

    await subscribers(http, base, 3)
    await client.subscribe("4", BALANCE)
    # Strawberry answers the extra subscribe with a graphql-transport-ws `error` message for
    # that id and keeps the connection (and the other subscriptions) open.
    refused = await client.receive()
    assert refused["type"] == "error" and refused["id"] == "4", refused
    assert refused["payload"][0]["message"] == "Subscription limit reached"
    assert await metric(http, base, "usercredits_open_subscriptions") == 3

    grant = {"userId": "alice", "offerGroup": "pro", "tokens": 7, "idempotencyKey": "g1"}
    await api.data(GRANT, {"input": grant}, as_=ADMIN)
    got = [await client.receive() for _ in range(3)]
    assert sorted(m["id"] for m in got) == ["1", "2", "3"]
    assert {m["payload"]["data"]["balanceChanged"]["tokens"] for m in got} == {7}

    # Completing one frees its slot.
    await client.complete("1")

    await subscribers(http, base, 2)
    await client.subscribe("5", BALANCE)
    await subscribers(http, base, 3)
    await api.data(GRANT, {"input": {**grant, "idempotencyKey": "g2"}}, as_=ADMIN)
    got = [await client.receive() for _ in range(3)]
    assert sorted(m["id"] for m in got) == ["2", "3", "5"]
    # Nothing else came: the next three messages are the next grant's.
    await api.data(GRANT, {"input": {**grant, "idempotencyKey": "g3"}}, as_=ADMIN)
    got = [await client.receive() for _ in range(3)]
    assert sorted(m["id"] for m in got) == ["2", "3", "5"]
    assert {m["payload"]["data"]["balanceChanged"]["tokens"] for m in got} == {21}
    await client.close()

    await subscribers(http, base, 0)
    report(
        capsys,
        f"4th subscription on a 3-subscription websocket refused ({refused['payload'][0]}); "
        "6 events reached the 3 live ones; gauge back to 0; lost: nothing",
    )


# --- oversized bodies -------------------------------------------------------------------


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


async def test_oversized_bodies_get_413_and_the_server_lives_on(
    api: Api, http: aiohttp.ClientSession, server_url: str, capsys: Capsys
) -> None:
    limit = 256 * 1024
    big_variables = {"query": "{ offers { id } }", "variables": {"pad": "a" * (limit + 1)}}
    cases: dict[str, dict[str, Any]] = {
        "JSON just over 256 KiB": {"json": big_variables},
        "1 MB of bytes": {
            "data": b"{" * 1_000_000,
            "headers": {"Content-Type": "application/json"},
        },
        "16 MB of bytes": {
            "data": b" " * 16_000_000,
            "headers": {"Content-Type": "application/json"},
        },
        "1 MB chunked, no length": {
            "data": chunks(1_000_000),
            "headers": {"Content-Type": "application/json"},
        },
        "1 MB with a valid token": {
            "json": {"query": "{ wallet { userId } }", "variables": {"pad": "b" * 1_000_000}},
            "headers": {"Authorization": f"Bearer {ALICE}"},
        },
    }
    for name, request in cases.items():
        async with http.post(api.url, **request) as response:
            assert response.status == 413, (name, response.status, await response.text())
        async with http.get(f"{server_url}/healthz") as response:
            assert response.status == 200, name
    # Just under the limit is read and answered as usual.
    under = {"query": "{ offers { id } }", "variables": {"pad": "c" * (limit - 1024)}}
    async with http.post(api.url, json=under) as response:
        assert response.status == 200 and (await response.json()) == {"data": {"offers": []}}
    assert (await api.data("query { wallet { userId } }", as_=ALICE))["wallet"]["userId"] == "alice"

    # A websocket message over aiohttp's 4 MiB limit closes that socket with 1009 only.
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {ALICE}"}
    )
    # The server may close as soon as the frame's header says its size, while the client
    # is still writing the rest: then the write fails, and the close frame is still there.
    with contextlib.suppress(ConnectionError):
        await client.ws.send_str(json.dumps({"type": "ping", "payload": {"pad": "d" * 5_000_000}}))
    closed = await client.ws.receive(timeout=10)
    assert closed.type == aiohttp.WSMsgType.CLOSE, closed
    assert closed.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG, closed
    await client.close()
    async with http.get(f"{server_url}/healthz") as response:
        assert response.status == 200
    report(
        capsys,
        f"{len(cases)} oversized bodies (up to 16 MB) got 413, a 5 MB websocket message closed "
        "its socket with 1009; /healthz and GraphQL answered after each; lost: nothing",
    )
