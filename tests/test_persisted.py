"""Automatic persisted queries over real HTTP: a hash stands for a query sent once before,
an unknown hash asks for the query, a wrong hash is refused, the limits still hold, only
queries are kept, and the budget counts what they take in memory."""

import hashlib
import json
import tracemalloc
from typing import Any

import aiohttp

from tests.api import token
from usercredits.schema.persisted import PersistedQueries

WALLET = "query Wallet { wallet { balances { tokens } } }"
USER = token("u1")


def persisted(query: str) -> dict[str, Any]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {USER}"}
    async with http.post(f"{url}/graphql", json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


def code(result: dict[str, Any]) -> str:
    assert result.get("data") is None, result
    found: str = result["errors"][0]["extensions"]["code"]
    return found


async def test_a_hash_stands_for_a_query_sent_before(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    only_hash = {"extensions": persisted(WALLET)}
    first = await post(http, server_url, only_hash)
    assert code(first) == "PERSISTED_QUERY_NOT_FOUND"
    assert first["errors"][0]["message"] == "PersistedQueryNotFound"

    with_query = {"query": WALLET, "extensions": persisted(WALLET)}
    assert await post(http, server_url, with_query) == {"data": {"wallet": {"balances": []}}}
    assert await post(http, server_url, only_hash) == {"data": {"wallet": {"balances": []}}}

    params = {"extensions": json.dumps(persisted(WALLET))}
    headers = {"Authorization": f"Bearer {USER}"}
    async with http.get(f"{server_url}/graphql", params=params, headers=headers) as response:
        assert response.status == 200
        assert await response.json() == {"data": {"wallet": {"balances": []}}}


async def test_a_wrong_hash_or_version_is_refused_and_not_kept(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    other = "query Other { wallet { balances { reserved } } }"
    wrong = {"query": WALLET, "extensions": persisted(other)}
    assert code(await post(http, server_url, wrong)) == "BAD_USER_INPUT"
    assert code(await post(http, server_url, {"extensions": persisted(other)})) == (
        "PERSISTED_QUERY_NOT_FOUND"
    )
    version_2 = {"persistedQuery": {**persisted(WALLET)["persistedQuery"], "version": 2}}
    assert code(await post(http, server_url, {"query": WALLET, "extensions": version_2})) == (
        "BAD_USER_INPUT"
    )


async def test_a_kept_query_still_meets_the_limits(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    deep = "query { wallet { " * 12 + "id" + " }" * 24
    assert code(await post(http, server_url, {"query": deep, "extensions": persisted(deep)})) == (
        "BAD_USER_INPUT"
    )
    assert code(await post(http, server_url, {"extensions": persisted(deep)})) == "BAD_USER_INPUT"


async def test_only_documents_of_queries_are_kept(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    debit = (
        'mutation { consumeTokens(input: {offerGroup: "pro", tokens: 1, idempotencyKey: "k"}) '
        "{ id } }"
    )
    for text, answer in ((debit, "INSUFFICIENT_TOKENS"), ("no GraphQL at all", "BAD_USER_INPUT")):
        assert code(
            await post(http, server_url, {"query": text, "extensions": persisted(text)})
        ) == (answer)
        assert code(await post(http, server_url, {"extensions": persisted(text)})) == (
            "PERSISTED_QUERY_NOT_FOUND"
        )


def test_the_budget_counts_what_kept_queries_take_in_memory() -> None:
    """Ten-byte queries: their hashes and entries take twenty times their text."""
    budget = 400_000
    queries = PersistedQueries(max_bytes=budget)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(16_000):
            text = f"{{ a{n} }}"
            queries.resolve(text, persisted(text))
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert taken < budget * 1.25, f"{taken} bytes kept for a budget of {budget}"


def test_the_least_recently_used_queries_leave_beyond_the_budget() -> None:
    # Each of these takes about 370 bytes: its text, its hash and its entry.
    queries = PersistedQueries(max_bytes=800)
    texts = [f"query Q{n} {{ wallet {{ balances {{ tokens }} }} }}" for n in range(4)]
    for text in texts[:2]:
        queries.resolve(text, persisted(text))
    queries.resolve(None, persisted(texts[0]))  # used again: the second is now the oldest
    queries.resolve(texts[2], persisted(texts[2]))
    assert queries.resolve(None, persisted(texts[0])) == texts[0]
    assert queries.resolve(None, persisted(texts[2])) == texts[2]
    for gone in (texts[1], texts[3]):
        try:
            queries.resolve(None, persisted(gone))
        except Exception as exc:
            assert "PersistedQueryNotFound" in str(exc)
        else:
            raise AssertionError(f"{gone} should not be kept")
