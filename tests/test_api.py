"""The GraphQL contract over real HTTP to a real aiohttp server on the real wire server:
the purchase flow, every error code, pagination and the role rules."""

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from tests.api import Api, token
from tests.conftest import StartServer
from tests.support import START, FakeClock
from usercredits.models import OrderDocument
from usercredits.services.errors import InvalidInput
from usercredits.services.identity.access import Role
from usercredits.services.payments import SandboxPaymentClient

# Issued at the FakeClock's start and valid for years: good on a server on the wall clock
# and on one on a FakeClock that a test moves on by weeks (test_webhooks uses these).
LASTING = timedelta(days=3650)
ADMIN = token("admin-1", Role.ADMIN, at=START, ttl=LASTING)
SERVICE = token("backend-1", Role.SERVICE)
ALICE = token("alice", at=START, ttl=LASTING)
BOB = token("bob")

UPSERT = """
mutation Upsert($input: OfferInput!) {
  upsertOffer(input: $input) { id name offerGroup tokenCount unlockedBy overridingKey
    price { amount currency minorUnits } prices { amount currency minorUnits }
    combinedItems { offerId offerGroup quantity cycle } }
}"""
CREATE_ORDER = """
mutation Buy($input: CreateOrderInput!) {
  createOrder(input: $input) { paymentClientSecret
    order { id status quantity tokenCount offerGroup total { amount currency minorUnits }
            history { status message } } }
}"""
COMPLETE = """
mutation Pay($id: ID!, $ok: Boolean!) {
  completeSandboxPayment(orderId: $id, succeed: $ok) { id status starts expires }
}"""
CONSUME = """
mutation Consume($input: ConsumeTokensInput!) {
  consumeTokens(input: $input) { id userId offerGroup tokens balanceAfter reason note
                                 idempotencyKey }
}"""
WALLET = """
query Wallet($user: ID, $group: String!) {
  wallet(userId: $user) { userId balances { offerGroup tokens reserved expires }
    balance(offerGroup: $group) { tokens } orders { id status offerGroup } }
}"""
LEDGER = """
query Ledger($user: ID, $first: Int, $after: String) {
  ledger(userId: $user, first: $first, after: $after) {
    edges { cursor node { tokens balanceAfter reason orderId } }
    pageInfo { hasNextPage endCursor } }
}"""


def offer_input(**overrides: Any) -> dict[str, Any]:
    base = {
        "name": "Pro pack",
        "kind": "TOKENS",
        "offerGroup": "pro",
        "tokenCount": 100,
        "prices": [{"amount": "9.99", "currency": "USD"}, {"amount": "1500", "currency": "JPY"}],
        "cycle": "MONTHLY",
    }
    return {**base, **overrides}


async def upsert(api: Api, **overrides: Any) -> dict[str, Any]:
    data = await api.data(UPSERT, {"input": offer_input(**overrides)}, as_=ADMIN)
    offer: dict[str, Any] = data["upsertOffer"]
    return offer


async def buy(api: Api, offer_id: str, as_: str, **extra: Any) -> dict[str, Any]:
    data = await api.data(CREATE_ORDER, {"input": {"offerId": offer_id, **extra}}, as_=as_)
    order: dict[str, Any] = data["createOrder"]["order"]
    if order["status"] == "PENDING":
        await api.data(COMPLETE, {"id": order["id"], "ok": True}, as_=as_)
    return order


async def grant(api: Api, user: str, tokens: int, group: str = "pro", key: str = "g") -> None:
    await api.data(
        """mutation G($input: GrantTokensInput!) { grantTokens(input: $input) { id } }""",
        {"input": {"userId": user, "offerGroup": group, "tokens": tokens, "idempotencyKey": key}},
        as_=ADMIN,
    )


async def test_purchase_flow_end_to_end(api: Api) -> None:
    pro = await upsert(api)
    assert pro["price"] == {"amount": "9.99", "currency": "USD", "minorUnits": 999}
    regular = await upsert(api, name="Team", offerGroup="team", overridingKey="team", weight=5)
    early = await upsert(
        api,
        name="Team early bird",
        offerGroup="team",
        overridingKey="team",
        weight=1,
        unlockedBy=["pro"],
        prices=[{"amount": "4.99", "currency": "USD"}],
    )
    chat = await upsert(api, name="Chat", offerGroup="chat", tokenCount=10, cycle="ONCE")
    bundle = await upsert(
        api,
        name="Bundle",
        offerGroup="bundle",
        tokenCount=1,
        combinedItems=[{"offerId": chat["id"], "quantity": 3}],
    )

    listing = "query { offers { id name } }"
    anonymous = [o["name"] for o in (await api.data(listing))["offers"]]
    assert sorted(anonymous) == ["Bundle", "Chat", "Pro pack", "Team"]

    created = await api.data(CREATE_ORDER, {"input": {"offerId": pro["id"]}}, as_=ALICE)
    payload = created["createOrder"]
    assert payload["order"]["status"] == "PENDING"
    assert payload["paymentClientSecret"]
    assert payload["order"]["total"] == {"amount": "9.99", "currency": "USD", "minorUnits": 999}
    paid = await api.data(COMPLETE, {"id": payload["order"]["id"], "ok": True}, as_=ALICE)
    assert paid["completeSandboxPayment"]["status"] == "PAID"

    mine = {o["name"]: o["id"] for o in (await api.data(listing, as_=ALICE))["offers"]}
    assert "Team early bird" in mine and "Team" not in mine
    assert mine["Team early bird"] == early["id"] and regular["id"] not in mine.values()

    await buy(api, bundle["id"], ALICE, quantity=2)
    wallet = (await api.data(WALLET, {"group": "chat"}, as_=ALICE))["wallet"]
    balances = {b["offerGroup"]: b["tokens"] for b in wallet["balances"]}
    assert balances == {"pro": 100, "bundle": 2, "chat": 60}
    assert wallet["balance"] == {"tokens": 60}
    assert len(wallet["orders"]) == 3 and {o["status"] for o in wallet["orders"]} == {"PAID"}

    entry = await api.data(
        CONSUME,
        {
            "input": {
                "offerGroup": "chat",
                "tokens": 7,
                "idempotencyKey": "job-1",
                "reason": "summary",
            }
        },
        as_=ALICE,
    )
    assert entry["consumeTokens"]["balanceAfter"] == 53
    assert entry["consumeTokens"]["note"] == "summary"
    assert entry["consumeTokens"]["reason"] == "consumption"
    ledger = (await api.data(LEDGER, {}, as_=ALICE))["ledger"]
    reasons = [(e["node"]["tokens"], e["node"]["reason"]) for e in ledger["edges"]]
    assert reasons == [(-7, "consumption"), (60, "purchase"), (2, "purchase"), (100, "purchase")]


async def test_a_bundle_tells_the_tokens_of_each_item_even_one_the_buyer_cannot_see(
    api: Api,
) -> None:
    chat = await upsert(api, name="Chat", offerGroup="chat", tokenCount=10, overridingKey="chat")
    await upsert(
        api, name="Chat (Pro)", offerGroup="chat", overridingKey="chat", unlockedBy=["pro"]
    )
    await upsert(
        api,
        name="Bundle",
        offerGroup="bundle",
        tokenCount=0,
        combinedItems=[{"offerId": chat["id"], "quantity": 3}],
    )
    await buy(api, (await upsert(api, name="Pro"))["id"], ALICE)
    listing = "query { offers { name combinedItems { offerId offerGroup tokenCount } } }"

    async def items() -> list[dict[str, Any]]:
        offers = (await api.data(listing, as_=ALICE))["offers"]
        assert "Chat" not in [o["name"] for o in offers]  # replaced by its Pro price
        bundled: list[dict[str, Any]] = next(o for o in offers if o["name"] == "Bundle")[
            "combinedItems"
        ]
        return bundled

    assert await items() == [{"offerId": chat["id"], "offerGroup": "chat", "tokenCount": 30}]
    await upsert(
        api, id=chat["id"], name="Chat", offerGroup="chat", tokenCount=20, overridingKey="chat"
    )
    assert (await items())[0]["tokenCount"] == 60  # read from the item offer, never a copy


async def test_ledger_and_orders_paginate(api: Api) -> None:
    await grant(api, "alice", 10)
    for i in range(4):
        await api.data(
            CONSUME,
            {"input": {"offerGroup": "pro", "tokens": 1, "idempotencyKey": f"k{i}"}},
            as_=ALICE,
        )
    page = (await api.data(LEDGER, {"first": 2}, as_=ALICE))["ledger"]
    assert [e["node"]["balanceAfter"] for e in page["edges"]] == [6, 7]
    assert page["pageInfo"]["hasNextPage"]
    after = page["pageInfo"]["endCursor"]
    rest = (await api.data(LEDGER, {"first": 10, "after": after}, as_=ALICE))["ledger"]
    assert [e["node"]["balanceAfter"] for e in rest["edges"]] == [8, 9, 10]
    assert not rest["pageInfo"]["hasNextPage"]

    offer = await upsert(api, prices=[{"amount": "0", "currency": "USD"}])
    for _ in range(3):
        await buy(api, offer["id"], ALICE)
    query = """query O($first: Int, $after: String) {
      orders(first: $first, after: $after, status: PAID) {
        edges { cursor node { id status } } pageInfo { hasNextPage endCursor } } }"""
    first = (await api.data(query, {"first": 2}, as_=ALICE))["orders"]
    assert len(first["edges"]) == 2 and first["pageInfo"]["hasNextPage"]
    second = (
        await api.data(query, {"first": 2, "after": first["pageInfo"]["endCursor"]}, as_=ALICE)
    )["orders"]
    assert len(second["edges"]) == 1 and not second["pageInfo"]["hasNextPage"]


async def test_role_rules(api: Api) -> None:
    await grant(api, "alice", 10)
    await grant(api, "bob", 10, key="g2")
    other_wallet = {"user": "bob", "group": "pro"}
    assert await api.error_code(WALLET, other_wallet, as_=ALICE) == "FORBIDDEN"
    assert await api.error_code(WALLET, {"group": "pro"}) == "UNAUTHENTICATED"
    assert (await api.data(WALLET, other_wallet, as_=SERVICE))["wallet"]["userId"] == "bob"
    assert await api.error_code(LEDGER, {"user": "bob"}, as_=ALICE) == "FORBIDDEN"
    assert (
        await api.error_code('query { orders(userId: "bob") { edges { cursor } } }', as_=ALICE)
        == "FORBIDDEN"
    )
    assert (
        await api.error_code('query { creditWarnings(userId: "bob") { kind } }', as_=ALICE)
        == "FORBIDDEN"
    )

    steal = {"input": {"userId": "bob", "offerGroup": "pro", "tokens": 1, "idempotencyKey": "x"}}
    assert await api.error_code(CONSUME, steal, as_=ALICE) == "FORBIDDEN"
    entry = (await api.data(CONSUME, steal, as_=SERVICE))["consumeTokens"]
    assert (entry["userId"], entry["balanceAfter"]) == ("bob", 9)

    assert await api.error_code(UPSERT, {"input": offer_input()}, as_=ALICE) == "FORBIDDEN"
    assert await api.error_code(UPSERT, {"input": offer_input()}, as_=SERVICE) == "FORBIDDEN"
    assert (
        await api.error_code(
            """mutation { grantTokens(input: {userId: "alice", offerGroup: "pro", tokens: 5,
           idempotencyKey: "free"}) { id } }""",
            as_=ALICE,
        )
        == "FORBIDDEN"
    )
    assert await api.error_code(CONSUME, steal) == "UNAUTHENTICATED"
    # Nothing above changed bob's or alice's balance but the service's debit.
    wallet = (await api.data(WALLET, {"group": "pro"}, as_=ALICE))["wallet"]
    assert wallet["balance"] == {"tokens": 10}
    assert (await api.data(WALLET, other_wallet, as_=ADMIN))["wallet"]["balance"] == {"tokens": 9}


async def test_other_users_orders_and_reservations_are_not_found(api: Api) -> None:
    """Another user's order or reservation answers exactly as an unknown id does, so ids
    cannot be probed for their owners."""
    offer = await upsert(api)
    order = (await api.data(CREATE_ORDER, {"input": {"offerId": offer["id"]}}, as_=ALICE))[
        "createOrder"
    ]["order"]
    unknown = "0" * 24

    async def refusal(query: str, variables: dict[str, Any] | None = None) -> tuple[str, str]:
        body = await api.call(query, variables, as_=BOB)
        error = body["errors"][0]
        return error["extensions"]["code"], error["message"]

    for mutation in ("refreshOrder", "cancelOrder"):
        theirs = await refusal(f'mutation {{ {mutation}(id: "{order["id"]}") {{ status }} }}')
        missing = await refusal(f'mutation {{ {mutation}(id: "{unknown}") {{ status }} }}')
        assert theirs == ("NOT_FOUND", f"order {order['id']} does not exist")
        assert missing == ("NOT_FOUND", f"order {unknown} does not exist")
    assert await refusal(COMPLETE, {"id": order["id"], "ok": True}) == (
        "NOT_FOUND",
        f"order {order['id']} does not exist",
    )
    for id in (order["id"], unknown):
        assert await api.data(f'query {{ order(id: "{id}") {{ id }} }}', as_=BOB) == {"order": None}
    mine = await api.data(f'query {{ order(id: "{order["id"]}") {{ status }} }}', as_=ALICE)
    assert mine["order"] == {"status": "PENDING"}
    await grant(api, "alice", 5)
    held = (
        await api.data(
            """mutation { reserveTokens(input: {offerGroup: "pro", tokens: 2,
           idempotencyKey: "r"}) { id tokens } }""",
            as_=ALICE,
        )
    )["reserveTokens"]
    for id in (held["id"], unknown):
        assert await refusal(f'mutation {{ releaseReservation(id: "{id}") {{ id }} }}') == (
            "NOT_FOUND",
            f"reservation {id} does not exist",
        )
    # A service sees alice's order but may not cancel it: that is FORBIDDEN, not a secret.
    cancel = f'mutation {{ cancelOrder(id: "{order["id"]}") {{ status }} }}'
    assert await api.error_code(cancel, as_=SERVICE) == "FORBIDDEN"
    canceled = await api.data(cancel, as_=ALICE)
    assert canceled["cancelOrder"] == {"status": "CANCELED"}


async def test_reservations_through_the_api(
    http: aiohttp.ClientSession, start_server: StartServer, clock: FakeClock
) -> None:
    api = Api(http, f"{await start_server(clock=clock)}/graphql")  # a reservation lapses on it
    await grant(api, "alice", 10)
    held = (
        await api.data(
            """mutation { reserveTokens(input: {offerGroup: "pro", tokens: 6, ttlSeconds: 60,
           idempotencyKey: "r1"}) { id tokens offerGroup expiresAt } }""",
            as_=ALICE,
        )
    )["reserveTokens"]
    assert held["tokens"] == 6
    wallet = (await api.data(WALLET, {"group": "pro"}, as_=ALICE))["wallet"]
    assert wallet["balances"][0]["tokens"] == 4 and wallet["balances"][0]["reserved"] == 6
    commit = (
        f'mutation {{ commitReservation(id: "{held["id"]}", tokens: 2) '
        "{ tokens balanceAfter reason } }"
    )
    entry = (await api.data(commit, as_=ALICE))["commitReservation"]
    assert entry == {"tokens": -2, "balanceAfter": 8, "reason": "consumption"}
    assert (await api.data(commit, as_=ALICE))["commitReservation"] == entry
    release = f'mutation {{ releaseReservation(id: "{held["id"]}") {{ id tokens }} }}'
    await api.data(release, as_=ALICE)
    wallet = (await api.data(WALLET, {"group": "pro"}, as_=ALICE))["wallet"]
    assert (wallet["balances"][0]["tokens"], wallet["balances"][0]["reserved"]) == (8, 0)

    short = (
        await api.data(
            """mutation { reserveTokens(input: {offerGroup: "pro", tokens: 1, ttlSeconds: 1,
           idempotencyKey: "r2"}) { id } }""",
            as_=ALICE,
        )
    )["reserveTokens"]
    clock.advance(seconds=1)
    late = f'mutation {{ commitReservation(id: "{short["id"]}") {{ id }} }}'
    assert await api.error_code(late, as_=ALICE) == "EXPIRED"


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        (
            CONSUME,
            {"input": {"offerGroup": "pro", "tokens": 50, "idempotencyKey": "k"}},
            "INSUFFICIENT_TOKENS",
        ),
        (
            CONSUME,
            {"input": {"offerGroup": "pro", "tokens": 0, "idempotencyKey": "k"}},
            "BAD_USER_INPUT",
        ),
        (
            CONSUME,
            {"input": {"offerGroup": "pro", "tokens": -3, "idempotencyKey": "k"}},
            "BAD_USER_INPUT",
        ),
        (
            CONSUME,
            {"input": {"offerGroup": "pro", "tokens": "many", "idempotencyKey": "k"}},
            "BAD_USER_INPUT",
        ),
        (
            CONSUME,
            {"input": {"offerGroup": "nope", "tokens": 1, "idempotencyKey": "k"}},
            "INSUFFICIENT_TOKENS",
        ),
        ('query { offer(id: "nope") { id } }', {}, None),
        ('mutation { refreshOrder(id: "0123456789abcdef01234567") { id } }', {}, "NOT_FOUND"),
        ("query { wallet { balances { tokens } } ", {}, "BAD_USER_INPUT"),
        ("query { nope }", {}, "BAD_USER_INPUT"),
    ],
)
async def test_error_codes_change_nothing(
    api: Api, query: str, variables: dict[str, Any], code: str | None
) -> None:
    await grant(api, "alice", 10)
    before = await api.data(LEDGER, {}, as_=ALICE)
    if code is None:
        assert (await api.data(query, variables, as_=ALICE)) == {"offer": None}
    else:
        assert await api.error_code(query, variables, as_=ALICE) == code
    assert await api.data(LEDGER, {}, as_=ALICE) == before


async def test_buying_errors(api: Api) -> None:
    limited = await upsert(api, quantityLimit=2)
    hidden = await upsert(api, name="VIP", unlockedBy=["gold"])
    cases = [
        ({"offerId": limited["id"], "quantity": 3}, "QUANTITY_LIMIT"),
        ({"offerId": limited["id"], "quantity": 0}, "BAD_USER_INPUT"),
        ({"offerId": limited["id"], "currency": "EUR"}, "BAD_USER_INPUT"),
        ({"offerId": limited["id"], "currency": "XYZ"}, "BAD_USER_INPUT"),
        ({"offerId": hidden["id"]}, "OFFER_NOT_AVAILABLE"),
        ({"offerId": "0123456789abcdef01234567"}, "NOT_FOUND"),
    ]
    for order_input, code in cases:
        assert await api.error_code(CREATE_ORDER, {"input": order_input}, as_=ALICE) == code
    price = f'query {{ offer(id: "{limited["id"]}") {{ price(currency: "EUR") {{ amount }} }} }}'
    assert await api.error_code(price, as_=ALICE) == "NOT_FOUND"
    jpy = await api.data(
        CREATE_ORDER,
        {"input": {"offerId": limited["id"], "currency": "JPY", "quantity": 2}},
        as_=ALICE,
    )
    assert jpy["createOrder"]["order"]["total"] == {
        "amount": "3000",
        "currency": "JPY",
        "minorUnits": 3000,
    }
    paid = await buy(api, limited["id"], ALICE)
    cancel = f'mutation {{ cancelOrder(id: "{paid["id"]}") {{ id }} }}'
    assert await api.error_code(cancel, as_=ALICE) == "CONFLICT"
    orders = await api.data("query { orders { edges { node { status } } } }", as_=ALICE)
    assert sorted(e["node"]["status"] for e in orders["orders"]["edges"]) == ["PAID", "PENDING"]


async def test_sandbox_payment_can_fail(api: Api) -> None:
    offer = await upsert(api)
    order = (await api.data(CREATE_ORDER, {"input": {"offerId": offer["id"]}}, as_=ALICE))[
        "createOrder"
    ]["order"]
    refused = await api.data(COMPLETE, {"id": order["id"], "ok": False}, as_=ALICE)
    assert refused["completeSandboxPayment"]["status"] == "REFUSED"
    wallet = (await api.data(WALLET, {"group": "pro"}, as_=ALICE))["wallet"]
    assert wallet["balances"] == []


async def test_idempotent_create_order_and_consume_over_http(api: Api) -> None:
    offer = await upsert(api)
    variables = {"input": {"offerId": offer["id"], "idempotencyKey": "cart-1"}}
    results = await asyncio.gather(
        *(api.data(CREATE_ORDER, variables, as_=ALICE) for _ in range(5))
    )
    assert len({r["createOrder"]["order"]["id"] for r in results}) == 1
    await grant(api, "alice", 5)
    debit = {"input": {"offerGroup": "pro", "tokens": 2, "idempotencyKey": "same"}}
    entries = await asyncio.gather(*(api.data(CONSUME, debit, as_=ALICE) for _ in range(5)))
    assert len({e["consumeTokens"]["id"] for e in entries}) == 1
    wallet = (await api.data(WALLET, {"group": "pro"}, as_=ALICE))["wallet"]
    assert wallet["balance"] == {"tokens": 3}


async def test_credit_warnings(api: Api) -> None:
    await grant(api, "alice", 1)
    await api.data(
        CONSUME, {"input": {"offerGroup": "pro", "tokens": 1, "idempotencyKey": "k"}}, as_=ALICE
    )
    found = await api.data("query { creditWarnings { offerGroup kind tokens } }", as_=ALICE)
    assert found["creditWarnings"] == [{"offerGroup": "pro", "kind": "LOW_BALANCE", "tokens": 0}]


async def test_query_limits(
    api: Api, http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    aliases = "query { " + " ".join(f"a{i}: offers {{ id }}" for i in range(20)) + " }"
    assert await api.error_code(aliases, as_=ALICE) == "BAD_USER_INPUT"
    tokens = "query { offers { " + "id " * 3000 + "} }"
    assert await api.error_code(tokens) == "BAD_USER_INPUT"
    malformed = await api.call("query { offers { id }")
    assert malformed["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Syntax Error" in malformed["errors"][0]["message"]

    shallow = Api(http, f"{await start_server(max_query_depth=2)}/graphql")
    deep = "query { wallet { orders { history { status } } } }"
    body = await shallow.call(deep, as_=ALICE)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert body.get("data") is None
    # The same document within the limit runs.
    assert (await api.data(deep, as_=ALICE))["wallet"]["orders"] == []


async def test_health_and_readiness(http: aiohttp.ClientSession, server_url: str) -> None:
    async with http.get(f"{server_url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{server_url}/readyz") as response:
        assert response.status == 200 and (await response.json())["status"] == "ready"
    async with http.get(f"{server_url}/graphql", headers={"Accept": "text/html"}) as response:
        assert response.status == 200 and "graphiql" in (await response.text()).lower()


async def test_update_archive_and_refresh_through_the_api(
    api: Api, sandbox: SandboxPaymentClient
) -> None:
    offer = await upsert(api)
    updated = await upsert(api, id=offer["id"], name="Pro pack v2", tokenCount=120)
    assert (updated["id"], updated["name"], updated["tokenCount"]) == (
        offer["id"],
        "Pro pack v2",
        120,
    )

    order = (await api.data(CREATE_ORDER, {"input": {"offerId": offer["id"]}}, as_=ALICE))[
        "createOrder"
    ]["order"]
    # The payment succeeds at the provider but its webhook never arrives.
    stored = await api.data(f'query {{ order(id: "{order["id"]}") {{ status }} }}', as_=ALICE)
    assert stored["order"]["status"] == "PENDING"
    stored_order = await OrderDocument.get(order["id"])
    assert stored_order is not None and stored_order.payment_intent_id is not None
    sandbox.settle(stored_order.payment_intent_id, succeed=True)
    refreshed = await api.data(
        f'mutation {{ refreshOrder(id: "{order["id"]}") {{ status }} }}', as_=ALICE
    )
    assert refreshed["refreshOrder"]["status"] == "PAID"
    wallet = (await api.data(WALLET, {"group": "pro"}, as_=ALICE))["wallet"]
    assert wallet["balance"] == {"tokens": 120}

    archive = f'mutation {{ archiveOffer(id: "{offer["id"]}") {{ id name }} }}'
    assert await api.error_code(archive, as_=ALICE) == "FORBIDDEN"
    assert (await api.data(archive, as_=ADMIN))["archiveOffer"]["name"] == "Pro pack v2"
    assert (await api.data("query { offers { id } }"))["offers"] == []
    again = await api.error_code(CREATE_ORDER, {"input": {"offerId": offer["id"]}}, as_=ALICE)
    assert again == "OFFER_NOT_AVAILABLE"


async def test_the_sandbox_takes_no_webhooks(http: aiohttp.ClientSession, server_url: str) -> None:
    """Sandbox payments complete through completeSandboxPayment: with the sandbox there is
    no webhook route, and the sandbox client parses no delivery."""
    body = b'{"id": "evt_1", "payment_id": "sandbox_pi_1"}'
    async with http.post(
        f"{server_url}/webhooks/stripe", data=body, headers={"Stripe-Signature": "anything"}
    ) as response:
        assert response.status == 404
    with pytest.raises(InvalidInput, match="the sandbox sends no webhooks"):
        SandboxPaymentClient().parse_webhook(body, "anything")
