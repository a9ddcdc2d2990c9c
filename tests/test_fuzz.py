"""Fuzzing the HTTP surface: no input makes the service fail internally.

- Every query and mutation hypothesis-graphql generates from the exported schema (valid
  ones, and invalid ones with one schema violation), sent with an admin token and ids that
  exist: HTTP 200 (or a 4xx for a body the server refuses) and never an error with
  `extensions.code` INTERNAL or outside the contract's codes.
- Random bytes, wrong content types, deeply nested JSON and 1 MB bodies, to /graphql and to
  /webhooks/stripe (unsigned, and signed with the real secret so that they get past the
  signature check): always a clean 4xx, never a 5xx, and /healthz still answers.
"""

import json
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from typing import Any

import aiohttp
import graphql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from tests.api import Api, token
from tests.conftest import StartServer
from tests.fake_stripe import FakeStripe, server_settings, sign
from tests.support import snapshot
from usercredits.api import build_schema
from usercredits.models import LedgerEntryDocument
from usercredits.services.identity.access import Role

pytestmark = pytest.mark.reliability

ADMIN = token("admin-1", Role.ADMIN)
ALICE = token("alice")
SCHEMA = build_schema(sandbox=True).as_str()  # the in-process server runs on the sandbox
CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "INSUFFICIENT_TOKENS",
    "QUANTITY_LIMIT",
    "OFFER_NOT_AVAILABLE",
    "EXPIRED",
    "PAYMENT_FAILED",
    "CONFLICT",
}  # the contract's codes but INTERNAL
FUZZ = settings(
    # USERCREDITS_FUZZ_EXAMPLES raises it for a longer local run.
    max_examples=int(os.environ.get("USERCREDITS_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # The same examples on every run, so that CI is reproducible; a failure prints its
    # minimal example. USERCREDITS_FUZZ_RANDOM=1 explores new ones.
    derandomize=not os.environ.get("USERCREDITS_FUZZ_RANDOM"),
    database=None,
)
Capsys = pytest.CaptureFixture[str]

# Ids the generated documents pick from, filled by the `known_ids` fixture before any
# example is drawn: real offers, orders, a reservation and users, or noise.
KNOWN_IDS: list[str] = []


def id_strategy() -> st.SearchStrategy[graphql.ValueNode]:
    known = st.integers(0, 1_000).map(lambda i: KNOWN_IDS[i % len(KNOWN_IDS)] if KNOWN_IDS else "")
    noise = st.text(max_size=30) | st.from_regex(r"\A[0-9a-f]{24}\Z")
    return (known | noise).map(nodes.String)


def datetime_strategy() -> st.SearchStrategy[graphql.ValueNode]:
    valid = st.datetimes(timezones=st.none() | st.just(UTC)).map(lambda d: d.isoformat())
    return (valid | st.text(max_size=40)).map(nodes.String)


def string_strategy() -> st.SearchStrategy[graphql.ValueNode]:
    """Strings that mean something here (groups, currencies, amounts, users) or noise."""
    meaningful = st.sampled_from(
        ["pro", "bundle", "USD", "JPY", "EUR", "usd", "9.99", "0", "-1", "1e9", "0.001", "alice"]
    )
    return (meaningful | st.text(max_size=20)).map(nodes.String)


SCALARS = {"ID": id_strategy(), "DateTime": datetime_strategy(), "String": string_strategy()}
PARSED = graphql.build_schema(SCHEMA)
assert PARSED.query_type is not None and PARSED.mutation_type is not None
# One root field per document, so that one failing field does not hide the others' paths;
# then documents with several root fields.
OPERATIONS = {
    "queries": st.one_of(
        *(queries(SCHEMA, fields=[f], custom_scalars=SCALARS) for f in PARSED.query_type.fields)
    ),
    "mutations": st.one_of(
        *(
            mutations(SCHEMA, fields=[f], custom_scalars=SCALARS)
            for f in PARSED.mutation_type.fields
        )
    ),
    "several queries": queries(SCHEMA, custom_scalars=SCALARS),
    "several mutations": mutations(SCHEMA, custom_scalars=SCALARS),
    "invalid queries": queries(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
    "invalid mutations": mutations(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
}


class Tally:
    """What a fuzz test sent and what came back, printed when the test ends."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()

    def record(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def line(self) -> str:
        sent = sum(self.outcomes.values())
        seen = ", ".join(f"{k}: {v}" for k, v in self.outcomes.most_common())
        faults = sum(
            n for k, n in self.outcomes.items() if k.startswith("HTTP 5") or k == "INTERNAL"
        )
        return f"{sent} requests ({seen}); server faults (5xx or INTERNAL): {faults or 'none'}"


@pytest.fixture
def tally(capsys: Capsys, request: pytest.FixtureRequest) -> Iterator[Tally]:
    counts = Tally()
    yield counts
    with capsys.disabled():
        print(f"\n[fuzz] {request.node.name}: {counts.line()}")


@pytest.fixture
async def known_ids(api: Api) -> list[str]:
    """Alice with tokens, a reservation, a pending and a paid order; offers and a bundle."""
    upsert = "mutation U($input: OfferInput!) { upsertOffer(input: $input) { id } }"
    base = {
        "name": "Pro",
        "kind": "TOKENS",
        "offerGroup": "pro",
        "tokenCount": 100,
        "prices": [{"amount": "9.99", "currency": "USD"}, {"amount": "1500", "currency": "JPY"}],
        "cycle": "MONTHLY",
    }
    pro = (await api.data(upsert, {"input": base}, as_=ADMIN))["upsertOffer"]["id"]
    free = (
        await api.data(
            upsert,
            {"input": {**base, "name": "Free", "prices": [{"amount": "0", "currency": "USD"}]}},
            as_=ADMIN,
        )
    )["upsertOffer"]["id"]
    bundle = (
        await api.data(
            upsert,
            {
                "input": {
                    **base,
                    "name": "Bundle",
                    "offerGroup": "bundle",
                    "combinedItems": [{"offerId": pro, "quantity": 2}],
                }
            },
            as_=ADMIN,
        )
    )["upsertOffer"]["id"]
    buy = "mutation B($id: ID!) { createOrder(input: {offerId: $id}) { order { id } } }"
    pending = (await api.data(buy, {"id": pro}, as_=ALICE))["createOrder"]["order"]["id"]
    paid = (await api.data(buy, {"id": free}, as_=ALICE))["createOrder"]["order"]["id"]
    await api.data(
        """mutation { grantTokens(input: {userId: "alice", offerGroup: "pro", tokens: 500,
           idempotencyKey: "seed"}) { id } }""",
        as_=ADMIN,
    )
    held = (
        await api.data(
            """mutation { reserveTokens(input: {offerGroup: "pro", tokens: 5,
               idempotencyKey: "hold"}) { id } }""",
            as_=ALICE,
        )
    )["reserveTokens"]["id"]
    KNOWN_IDS[:] = [pro, free, bundle, pending, paid, held, "alice", "admin-1", "nobody"]
    return KNOWN_IDS


async def healthy(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(f"{base}/healthz") as response:
        assert response.status == 200, "the server stopped answering /healthz"


def check_graphql_answer(status: int, text: str, what: object, tally: Tally) -> None:
    """A clean answer: no 5xx; on 200 a JSON body whose errors all carry a contract code
    other than INTERNAL."""
    if status != 200:
        tally.record(f"HTTP {status}")
        assert status < 500, f"{status} for {what!r}: {text[:500]}"
        return
    body = json.loads(text)
    errors = body.get("errors") or []
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    tally.record("INTERNAL" if "INTERNAL" in codes else str(codes[0]) if codes else "ok")
    assert "INTERNAL" not in codes, f"INTERNAL for {what!r}: {errors}"
    assert all(code in CODES for code in codes), f"codes {codes} for {what!r}: {errors}"


# --- generated GraphQL documents --------------------------------------------------------


@pytest.mark.parametrize("kind", list(OPERATIONS))
@FUZZ
@given(data=st.data())
async def test_generated_operations_never_fail_internally(
    http: aiohttp.ClientSession,
    server_url: str,
    known_ids: list[str],
    tally: Tally,
    kind: str,
    data: st.DataObject,
) -> None:
    document = data.draw(OPERATIONS[kind], label="document")
    # A mutation with one root field that fails must change nothing (the contract).
    single_mutation = kind == "mutations"
    before = await snapshot() if single_mutation else None
    async with http.post(
        f"{server_url}/graphql",
        json={"query": document},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as response:
        text = await response.text()
        check_graphql_answer(response.status, text, document, tally)
    if kind.startswith("invalid"):
        assert tally.outcomes["ok"] == 0, f"an invalid document was run: {document}"
    if single_mutation and root_failed(json.loads(text)):
        assert await snapshot() == before, f"a failed mutation changed data: {document}"


def root_failed(body: dict[str, Any]) -> bool:
    """Whether a root field itself failed (an error in a sub-selection of a mutation's
    result, like `price(currency: "XYZ")`, comes after the change and says nothing of it)."""
    return any(len(error.get("path") or [None]) == 1 for error in body.get("errors") or [])


# --- boundary values --------------------------------------------------------------------

MAX_INT = 2**31 - 1
GRANT = """mutation G($tokens: Int!, $key: String!, $expires: DateTime) {
  grantTokens(input: {userId: "alice", offerGroup: "pro", tokens: $tokens,
                      idempotencyKey: $key, expires: $expires}) { balanceAfter } }"""
OFFER = """mutation U($amount: String!, $currency: String!) { upsertOffer(input: {name: "X",
  kind: TOKENS, offerGroup: "pro", tokenCount: 1, cycle: MONTHLY,
  prices: [{amount: $amount, currency: $currency}]}) { id } }"""
Step = tuple[str, dict[str, Any], str]
WALLET = "query { wallet { balances { tokens } } }"
BOUNDARIES: dict[str, list[Step]] = {
    "expires without a time zone": [
        (GRANT, {"tokens": 1, "key": "a", "expires": "2099-01-01T00:00:00"}, ADMIN)
    ],
    "expires at the end of time": [
        (GRANT, {"tokens": 1, "key": "a", "expires": "9999-12-31T23:59:59+00:00"}, ADMIN),
        ("query { creditWarnings(withinSeconds: 2147483647) { kind } }", {}, ALICE),
    ],
    "a balance past 2^31 - 1": [
        (GRANT, {"tokens": MAX_INT, "key": "a"}, ADMIN),
        (GRANT, {"tokens": MAX_INT, "key": "b"}, ADMIN),
        (WALLET, {}, ALICE),  # whatever happened, alice can still read her wallet
    ],
    "a price of 1e999": [(OFFER, {"amount": "1e999", "currency": "USD"}, ADMIN)],
    "a price past 2^63 minor units": [
        (OFFER, {"amount": "99999999999999999999999", "currency": "USD"}, ADMIN)
    ],
    "a price of NaN, -0, 0.001 and in lower case": [
        (OFFER, {"amount": "NaN", "currency": "USD"}, ADMIN),
        (OFFER, {"amount": "-0", "currency": "USD"}, ADMIN),
        (OFFER, {"amount": "0.001", "currency": "USD"}, ADMIN),
        (OFFER, {"amount": "1", "currency": "usd"}, ADMIN),
    ],
    "pages of -1, 0, 2^31 - 1 and a made-up cursor": [
        ("query { ledger(first: -1) { edges { cursor } } }", {}, ALICE),
        ("query { ledger(first: 0) { edges { cursor } } }", {}, ALICE),
        ("query { orders(first: 2147483647) { edges { cursor } } }", {}, ALICE),
        ('query { ledger(after: "garbage") { edges { cursor } } }', {}, ALICE),
        ('query { orders(after: "garbage") { edges { cursor } } }', {}, ALICE),
    ],
    "reservations of 0, -5 and 2^31 - 1 seconds": [
        (
            """mutation R($ttl: Int) { reserveTokens(input: {offerGroup: "pro", tokens: 1,
               ttlSeconds: $ttl, idempotencyKey: "r"}) { id } }""",
            {"ttl": ttl},
            ALICE,
        )
        for ttl in (0, -5, MAX_INT)
    ],
}


@pytest.mark.parametrize("case", list(BOUNDARIES))
async def test_boundary_values_never_fail_internally(api: Api, tally: Tally, case: str) -> None:
    """Each step either works or fails with a contract code and changes nothing; a wallet
    can always be read."""
    for query, variables, caller in BOUNDARIES[case]:
        before = await snapshot()
        async with api.session.post(
            api.url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {caller}"},
        ) as response:
            text = await response.text()
            check_graphql_answer(response.status, text, (query, variables), tally)
        body = json.loads(text)
        if root_failed(body):
            assert await snapshot() == before, f"{case}: a failed step changed data: {text}"
        if query == WALLET:
            assert not body.get("errors"), f"{case}: the wallet cannot be read: {text}"


# --- hostile bodies to /graphql ---------------------------------------------------------


async def one_megabyte() -> AsyncIterator[bytes]:
    for _ in range(16):
        yield b"[" * 65536


JSON = {"Content-Type": "application/json"}
GRAPHQL_BODIES: dict[str, dict[str, Any]] = {
    "not JSON": {"data": b"{not json", "headers": JSON},
    "invalid UTF-8": {"data": b'{"query": "{ offers { id } }\xff"}', "headers": JSON},
    "UTF-16 byte order mark, truncated": {"data": b"\xff\xfe{", "headers": JSON},
    "deeply nested array (100k)": {"data": b"[" * 100_000 + b"]" * 100_000, "headers": JSON},
    "deeply nested variables (5k)": {
        "data": b'{"query": "{ offers { id } }", "variables": '
        + b'{"a":' * 5000
        + b"1"
        + b"}" * 5000
        + b"}",
        "headers": JSON,
    },
    "JSON null": {"data": b"null", "headers": JSON},
    "JSON number": {"data": b"42", "headers": JSON},
    "JSON string": {"data": b'"{ offers { id } }"', "headers": JSON},
    "empty body": {"data": b"", "headers": JSON},
    "batch": {"json": [{"query": "{ offers { id } }"}] * 3},
    "query is a number": {"json": {"query": 5}},
    "query is missing": {"json": {"variables": {}}},
    "variables is a string": {"json": {"query": "{ offers { id } }", "variables": "x"}},
    "operationName is a list": {"json": {"query": "{ offers { id } }", "operationName": [1]}},
    "extensions is a string": {"json": {"query": "{ offers { id } }", "extensions": "x"}},
    "NUL bytes in the query": {"json": {"query": "{ offers\x00 { id } }"}},
    "text/plain": {"data": b"{ offers { id } }", "headers": {"Content-Type": "text/plain"}},
    "application/xml": {"data": b"<q/>", "headers": {"Content-Type": "application/xml"}},
    "no content type": {"data": b'{"query": "{ offers { id } }"}'},
    "form": {"data": {"query": "{ offers { id } }"}},
    "multipart garbage": {
        "data": b"--x\r\nContent-Disposition: form-data; name=operations\r\n\r\n{\r\n--x--",
        "headers": {"Content-Type": "multipart/form-data; boundary=x"},
    },
    "1 MB of bytes": {"data": b"\x00" * 1_000_000, "headers": JSON},
    "1 MB chunked": {"data": one_megabyte(), "headers": JSON},
    "100 KB Authorization header": {
        "json": {"query": "{ offers { id } }"},
        "headers": {"Authorization": "Bearer " + "a" * 100_000},
    },
}
GRAPHQL_GETS: dict[str, dict[str, str]] = {
    "GET deeply nested variables": {"query": "{ offers { id } }", "variables": "[" * 2500},
    "GET variables not JSON": {"query": "{ offers { id } }", "variables": "{x"},
    "GET a mutation": {"query": 'mutation { archiveOffer(id: "x") { id } }'},
    "GET no query": {},
    "GET query too long for a URL": {"query": "{ offers { id } }" + " " * 20_000},
}


@pytest.mark.parametrize("case", list(GRAPHQL_BODIES) + list(GRAPHQL_GETS))
async def test_hostile_bodies_to_graphql_get_a_clean_4xx(
    http: aiohttp.ClientSession, server_url: str, tally: Tally, case: str
) -> None:
    url = f"{server_url}/graphql"
    if case in GRAPHQL_GETS:
        request = http.get(url, params=GRAPHQL_GETS[case], headers={"Accept": "application/json"})
    else:
        request = http.post(url, **GRAPHQL_BODIES[case])
    async with request as response:
        status, text = response.status, await response.text()
    # A refused body gets a 4xx; a JSON body whose query is bad may also get a GraphQL
    # error (200, BAD_USER_INPUT), which is as clean.
    check_graphql_answer(status, text, case, tally)
    if status == 200:
        assert json.loads(text).get("data") is None, text
    await healthy(http, server_url)


JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
GRAPHQL_REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "query": st.sampled_from(["{ offers { id } }", "query Q($a: ID) { wallet { userId } }"])
        | JSON_VALUES,
        "variables": JSON_VALUES,
        "operationName": JSON_VALUES,
        "extensions": JSON_VALUES,
    },
)


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()


@FUZZ
@given(
    body=st.binary(max_size=4096) | JSON_VALUES.map(dumps) | GRAPHQL_REQUESTS.map(dumps),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "application/graphql-response+json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
        ]
    ),
)
async def test_random_bytes_to_graphql(
    http: aiohttp.ClientSession, server_url: str, tally: Tally, body: bytes, content_type: str
) -> None:
    async with http.post(
        f"{server_url}/graphql", data=body, headers={"Content-Type": content_type}
    ) as response:
        check_graphql_answer(response.status, await response.text(), (content_type, body), tally)
    await healthy(http, server_url)


# --- hostile bodies to /webhooks/stripe -------------------------------------------------


@pytest.fixture
async def shop_url(start_server: StartServer, fake_stripe: tuple[FakeStripe, str]) -> str:
    """The app with Stripe settings, so /webhooks/stripe exists."""
    return await start_server(**server_settings(fake_stripe[1]))


def stripe_event(**fields: Any) -> bytes:
    return json.dumps({"id": "evt_fuzz", "object": "event", "created": 1, **fields}).encode()


WEBHOOK_BODIES: dict[str, bytes] = {
    "not JSON": b"{not json",
    "invalid UTF-8": b"\xff\xfe{",
    "empty": b"",
    "deeply nested object (5k)": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "deeply nested array (100k)": b"[" * 100_000 + b"]" * 100_000,
    "a JSON array": b"[1, 2]",
    "a JSON number": b"0",
    "an event without type": stripe_event(data={"object": {}}),
    "an event without data": stripe_event(type="payment_intent.succeeded"),
    "an intent that is a string": stripe_event(
        type="payment_intent.succeeded", data={"object": "pi_1"}
    ),
    "an intent without status": stripe_event(
        type="payment_intent.succeeded", data={"object": {"id": "pi_1"}}
    ),
    "an intent with a bad amount": stripe_event(
        type="payment_intent.succeeded",
        data={
            "object": {
                "id": "pi_1",
                "object": "payment_intent",
                "status": "succeeded",
                "amount_received": "lots",
                "currency": 5,
            }
        },
    ),
    "an event id that is a number": json.dumps(
        {"id": 5, "object": "event", "type": "x.y", "data": {"object": {}}}
    ).encode(),
    "an event without id": json.dumps(
        {"object": "event", "type": "x.y", "data": {"object": {}}}
    ).encode(),
}


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("case", list(WEBHOOK_BODIES))
async def test_hostile_bodies_to_the_webhook_get_a_clean_4xx(
    http: aiohttp.ClientSession, shop_url: str, tally: Tally, case: str, signed: bool
) -> None:
    body = WEBHOOK_BODIES[case]
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["Stripe-Signature"] = sign(body)
    async with http.post(f"{shop_url}/webhooks/stripe", data=body, headers=headers) as response:
        status, text = response.status, await response.text()
    tally.record(f"HTTP {status}")
    assert 400 <= status < 500, f"{case} ({'signed' if signed else 'unsigned'}): {status} {text}"
    await healthy(http, shop_url)
    assert await LedgerEntryDocument.count() == 0


async def test_oversized_and_mistyped_webhooks_get_a_clean_4xx(
    http: aiohttp.ClientSession, shop_url: str, tally: Tally
) -> None:
    url = f"{shop_url}/webhooks/stripe"
    big = b"{" * 1_000_000
    cases: dict[str, dict[str, Any]] = {
        "1 MB unsigned": {"data": big},
        "1 MB signed": {"data": big, "headers": {"Stripe-Signature": sign(big)}},
        "1 MB chunked": {"data": one_megabyte()},
        "text/plain": {"data": b"hello", "headers": {"Content-Type": "text/plain"}},
        "a form": {"data": {"type": "payment_intent.succeeded"}},
        "a signature of garbage": {"data": b"{}", "headers": {"Stripe-Signature": "t=1,v1=zz"}},
        "a 100 KB signature": {"data": b"{}", "headers": {"Stripe-Signature": "v" * 100_000}},
    }
    for name, request in cases.items():
        async with http.post(url, **request) as response:
            status = response.status
            tally.record(f"HTTP {status}")
            assert 400 <= status < 500, f"{name}: {status} {await response.text()}"
        await healthy(http, shop_url)
    async with http.get(url) as response:
        assert response.status == 405
    assert await LedgerEntryDocument.count() == 0


INTENTS = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["pi_fuzz", ""]) | JSON_VALUES,
        "object": st.just("payment_intent"),
        "status": st.sampled_from(["succeeded", "canceled", "requires_payment_method"])
        | JSON_VALUES,
        "amount_received": st.integers() | JSON_VALUES,
        "currency": st.sampled_from(["usd", "jpy"]) | JSON_VALUES,
        "last_payment_error": JSON_VALUES,
        "refunded": st.booleans() | JSON_VALUES,
        "payment_intent": JSON_VALUES,
    },
)
EVENTS = st.fixed_dictionaries(
    {"object": st.just("event")},
    optional={
        "id": st.text(min_size=1, max_size=12) | JSON_VALUES,
        "type": st.sampled_from(
            [
                "payment_intent.succeeded",
                "payment_intent.payment_failed",
                "payment_intent.canceled",
                "charge.refunded",
                "customer.created",
            ]
        )
        | JSON_VALUES,
        "data": st.fixed_dictionaries({}, optional={"object": INTENTS | JSON_VALUES}) | JSON_VALUES,
    },
)


@FUZZ
@given(
    body=st.binary(max_size=2048) | JSON_VALUES.map(dumps) | EVENTS.map(dumps),
    signed=st.booleans(),
)
async def test_random_bytes_to_the_webhook(
    http: aiohttp.ClientSession, shop_url: str, tally: Tally, body: bytes, signed: bool
) -> None:
    headers = {"Stripe-Signature": sign(body)} if signed else {}
    async with http.post(f"{shop_url}/webhooks/stripe", data=body, headers=headers) as response:
        status, text = response.status, await response.text()
    tally.record(f"HTTP {status}")
    # A signed, well-formed event may be acknowledged (200: ignored or unknown payment);
    # anything else is refused with a 4xx. Never a 5xx: Stripe would retry it for days.
    if status == 200:
        assert signed and json.loads(text)["received"] is True, text
    else:
        assert 400 <= status < 500, f"{status} for signed={signed} {body!r}: {text[:300]}"
    await healthy(http, shop_url)
