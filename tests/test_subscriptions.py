"""Live subscriptions with a real graphql-transport-ws client over a real websocket: events
reach subscribers on every instance, only their own, and stop when they unsubscribe; a
refused socket is closed with the code that tells its client what would do (4401: a fresh
token, 4403: other credentials, 4400: a payload it got right)."""

from datetime import timedelta

import aiohttp
import pytest

from tests.api import SECRET, Api, TransportWsClient, token, ws_url
from tests.conftest import StartServer
from tests.waits import feed_saw, subscribers
from usercredits.server.auth import TokenRules, issue_token
from usercredits.server.socket_closes import TOKEN_EXPIRED_REASON
from usercredits.server.view import SIGN_IN
from usercredits.services.identity.access import Role

ADMIN = token("admin-1", Role.ADMIN)
SERVICE = token("backend-1", Role.SERVICE)
ALICE = token("alice")
BOB = token("bob")

BALANCE = """subscription B($user: ID, $group: String) {
  balanceChanged(userId: $user, offerGroup: $group) { userId offerGroup tokens delta reason }
}"""
ORDERS = "subscription { orderUpdated { id status offerGroup } }"
GRANT = """mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { id } }"""
CONSUME = """mutation C($input: ConsumeTokensInput!) { consumeTokens(input: $input) { id } }"""


async def grant(api: Api, user: str, tokens: int, key: str) -> None:
    await api.data(
        GRANT,
        {"input": {"userId": user, "offerGroup": "pro", "tokens": tokens, "idempotencyKey": key}},
        as_=ADMIN,
    )


async def consume(api: Api, tokens: int, key: str, as_: str = ALICE) -> None:
    await api.data(
        CONSUME, {"input": {"offerGroup": "pro", "tokens": tokens, "idempotencyKey": key}}, as_=as_
    )


async def test_a_consume_reaches_the_subscriber_with_the_new_balance(
    api: Api, http: aiohttp.ClientSession, server_url: str
) -> None:
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {ALICE}"}
    )
    await client.subscribe("1", BALANCE)
    await grant(api, "alice", 10, "g1")
    assert (await client.receive())["payload"]["data"]["balanceChanged"]["tokens"] == 10
    await consume(api, 3, "k1")
    message = await client.receive()
    assert message["type"] == "next" and message["id"] == "1"
    assert message["payload"]["data"]["balanceChanged"] == {
        "userId": "alice",
        "offerGroup": "pro",
        "tokens": 7,
        "delta": -3,
        "reason": "consumption",
    }
    # Another user's movements never reach alice: a marker grant of hers after bob's comes
    # through the same ordered feed and queue, after anything bob's would have sent.
    await grant(api, "bob", 5, "g2")
    await grant(api, "alice", 1, "marker")
    marker = await client.receive()
    assert marker["payload"]["data"]["balanceChanged"]["userId"] == "alice", marker
    assert marker["payload"]["data"]["balanceChanged"]["tokens"] == 8, marker
    await client.close()


async def test_a_user_cannot_subscribe_to_another_users_balance(
    api: Api, http: aiohttp.ClientSession, server_url: str
) -> None:
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {ALICE}"}
    )
    await client.subscribe("1", BALANCE, {"user": "bob"})
    message = await client.receive()
    # graphql-transport-ws sends a resolver's error as a `next` whose payload has errors.
    assert message["type"] == "next" and message["payload"]["data"] is None, message
    assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await client.receive()) == {"id": "1", "type": "complete"}
    # Her own balance on the same socket, listening before bob's grant: her marker grant
    # after bob's is the next message, after anything bob's grant would have sent.
    await client.subscribe("2", BALANCE)
    await subscribers(http, server_url, 1)
    await grant(api, "bob", 5, "g1")
    await grant(api, "alice", 1, "marker")
    marker = await client.receive()
    assert marker["id"] == "2", marker
    assert marker["payload"]["data"]["balanceChanged"]["userId"] == "alice", marker
    await client.close()

    staff = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {SERVICE}"}
    )
    await staff.subscribe("s", BALANCE, {"user": "bob"})
    await consume(api, 2, "k", as_=BOB)
    # Bob's grant may still be on its way from the change stream: read up to the debit.
    message = await staff.receive()
    while message["payload"]["data"]["balanceChanged"]["reason"] != "consumption":
        message = await staff.receive()
    assert message["payload"]["data"]["balanceChanged"]["tokens"] == 3
    await staff.close()


async def test_two_instances_share_events(
    http: aiohttp.ClientSession, server_url: str, server_process: str
) -> None:
    instance_a, instance_b = server_url, server_process
    api_a = Api(http, f"{instance_a}/graphql")
    client = await TransportWsClient.connect(
        http, ws_url(instance_b), {"authorization": f"Bearer {ALICE}"}
    )
    await client.subscribe("1", BALANCE, {"group": "pro"})
    await grant(api_a, "alice", 10, "g1")
    assert (await client.receive())["payload"]["data"]["balanceChanged"]["tokens"] == 10
    await consume(api_a, 4, "k1")
    message = await client.receive()
    assert message["payload"]["data"]["balanceChanged"]["tokens"] == 6
    await client.close()


async def test_unsubscribe_stops_events(
    api: Api, http: aiohttp.ClientSession, server_url: str
) -> None:
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {ALICE}"}
    )
    await client.subscribe("1", BALANCE)
    await grant(api, "alice", 10, "g1")
    assert (await client.receive())["payload"]["data"]["balanceChanged"]["tokens"] == 10
    await consume(api, 1, "k1")
    assert (await client.receive())["payload"]["data"]["balanceChanged"]["tokens"] == 9
    await client.complete("1")
    await subscribers(http, server_url, 0)  # gone from the event hub
    await consume(api, 1, "k2")
    await feed_saw(http, server_url, "consumption", 2)  # k2's event went to no one
    # A new subscription and a marker debit: the marker is the next message on the socket.
    await client.subscribe("2", BALANCE)
    await subscribers(http, server_url, 1)
    await consume(api, 1, "k3")
    marker = await client.receive()
    assert marker["id"] == "2", marker
    assert marker["payload"]["data"]["balanceChanged"]["tokens"] == 7, marker
    await client.close()


async def test_order_updates_are_pushed(
    api: Api, http: aiohttp.ClientSession, server_url: str
) -> None:
    offer = await api.data(
        """mutation { upsertOffer(input: {name: "Pro", kind: TOKENS, offerGroup: "pro",
           tokenCount: 5, prices: [{amount: "2", currency: "USD"}], cycle: ONCE}) { id } }""",
        as_=ADMIN,
    )
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {ALICE}"}
    )
    await client.subscribe("o", ORDERS)
    created = await api.data(
        "mutation B($id: ID!) { createOrder(input: {offerId: $id}) { order { id } } }",
        {"id": offer["upsertOffer"]["id"]},
        as_=ALICE,
    )
    order_id = created["createOrder"]["order"]["id"]
    first = await client.receive()
    assert first["payload"]["data"]["orderUpdated"] == {
        "id": order_id,
        "status": "PENDING",
        "offerGroup": "pro",
    }
    await api.data(
        "mutation P($id: ID!) { completeSandboxPayment(orderId: $id) { id } }",
        {"id": order_id},
        as_=ALICE,
    )
    paid = await client.receive()
    assert paid["payload"]["data"]["orderUpdated"]["status"] == "PAID"
    await client.close()


EXPIRED = issue_token(
    rules=TokenRules(secret=SECRET), user_id="alice", roles=[Role.USER], ttl=timedelta(seconds=-5)
)
FORGED = issue_token(
    rules=TokenRules(secret="someone-elses-secret-that-is-long-enough"),
    user_id="alice",
    roles=[Role.ADMIN],
)
MALFORMED = "Authorization must be 'Bearer <token or API key>'"

REFUSALS: dict[str, tuple[object, int, str]] = {
    # The token expired: a fresh one would do.
    "expired": ({"authorization": f"Bearer {EXPIRED}"}, 4401, TOKEN_EXPIRED_REASON),
    # Credentials that will never do: forbidden.
    "not a jwt": (
        {"authorization": "Bearer not-a-jwt"},
        4403,
        "the token was refused: Not enough segments",
    ),
    "forged signature": (
        {"authorization": f"Bearer {FORGED}"},
        4403,
        "the token was refused: Signature verification failed",
    ),
    "unknown API key": (
        {"authorization": "Bearer ucsk_made-up"},
        4403,
        "the API key is unknown or revoked",
    ),
    "no authorization": ({}, 4403, SIGN_IN),
    # A payload the client got wrong.
    "another scheme": ({"authorization": "Basic abc"}, 4400, MALFORMED),
    "authorization not a string": ({"authorization": 42}, 4400, MALFORMED),
    "payload not an object": (["Bearer x"], 4400, "Invalid connection init payload"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refused_connection_init_is_closed_with_a_code_saying_what_would_do(
    http: aiohttp.ClientSession, server_url: str, case: str
) -> None:
    payload, code, reason = REFUSALS[case]
    ws = await http.ws_connect(ws_url(server_url), protocols=["graphql-transport-ws"])
    await ws.send_json({"type": "connection_init", "payload": payload})
    message = await ws.receive(timeout=5)
    assert (message.type, message.data, message.extra) == (
        aiohttp.WSMsgType.CLOSE,
        code,
        reason,
    )
    await ws.close()


async def test_a_message_that_breaks_the_protocol_is_closed_with_4400(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {ALICE}"}
    )
    await client.ws.send_str("not json")
    message = await client.ws.receive(timeout=5)
    assert (message.type, message.data, message.extra) == (
        aiohttp.WSMsgType.CLOSE,
        4400,
        "WebSocket message must be valid JSON",
    )


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([{"type": "é" * 300}], 4400),
        (2 * [{"type": "subscribe", "id": "i" * 300, "payload": {"query": BALANCE}}], 4409),
    ],
)
async def test_a_close_quoting_what_the_client_sent_fits_in_a_close_frame(
    http: aiohttp.ClientSession, server_url: str, messages: list[dict[str, object]], code: int
) -> None:
    """Strawberry's reasons quote the message (an unknown type, a subscription id taken); a
    close frame holds 123 bytes of reason, and a longer one would not close cleanly."""
    client = await TransportWsClient.connect(
        http, ws_url(server_url), {"authorization": f"Bearer {ALICE}"}
    )
    for message in messages:
        await client.ws.send_json(message)
    closed = await client.ws.receive(timeout=5)
    assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, code), closed
    assert closed.extra.endswith("...") and len(closed.extra.encode()) == 123, closed.extra


async def test_only_graphql_transport_ws_is_spoken(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    ws = await http.ws_connect(ws_url(server_url), protocols=["graphql-ws"])
    assert ws.protocol is None
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4406
    await ws.close()


async def test_the_server_pings_idle_websockets(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    url = ws_url(await start_server(ws_heartbeat_seconds=0.2))
    async with http.ws_connect(url, protocols=["graphql-transport-ws"], autoping=False) as ws:
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.PING


async def test_only_allowed_origins_may_open_websockets(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    url = ws_url(await start_server(allowed_origins=["https://app.example"]))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(
            url, protocols=["graphql-transport-ws"], headers={"Origin": "https://evil.example"}
        )
    assert refused.value.status == 403
    client = await http.ws_connect(
        url, protocols=["graphql-transport-ws"], headers={"Origin": "https://app.example"}
    )
    await client.send_json(
        {"type": "connection_init", "payload": {"authorization": f"Bearer {ALICE}"}}
    )
    assert (await client.receive_json(timeout=5))["type"] == "connection_ack"
    await client.close()
