"""Real clients for the API tests: GraphQL over HTTP, and graphql-transport-ws over a real
websocket, both with aiohttp against a server listening on 127.0.0.1."""

import json
import re
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from usercredits.server.auth import TokenRules, issue_token
from usercredits.services.identity.access import Role

SECRET = "test-secret-that-is-long-enough-for-hs256"


def token(
    user_id: str, *roles: Role, at: datetime | None = None, ttl: timedelta = timedelta(hours=12)
) -> str:
    """A token of the test secret, issued `at` (the wall clock's now unless given: a server
    on a FakeClock is given tokens of the fake time) and valid for `ttl`."""
    return issue_token(
        rules=TokenRules(secret=SECRET),
        user_id=user_id,
        roles=list(roles or [Role.USER]),
        ttl=ttl,
        now=at,
    )


class Api:
    """POSTs GraphQL documents to one server as a given caller."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {as_}"} if as_ else {}
        async with self.session.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        ) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = None
    ) -> dict[str, Any]:
        """The result's data, failing the test on any error."""
        body = await self.call(query, variables, as_=as_)
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def error_code(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = None
    ) -> str:
        """The single error's extensions.code."""
        body = await self.call(query, variables, as_=as_)
        assert body.get("errors"), f"expected an error, got {body}"
        code: str = body["errors"][0]["extensions"]["code"]
        return code


def ws_url(base: str) -> str:
    """The GraphQL websocket address of the server at `base`."""
    return base.replace("http://", "ws://") + "/graphql"


class TransportWsClient:
    """A graphql-transport-ws client: connection_init, subscribe, next, complete."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def connect(
        cls, session: aiohttp.ClientSession, url: str, payload: dict[str, Any]
    ) -> "TransportWsClient":
        ws = await session.ws_connect(url, protocols=["graphql-transport-ws"])
        client = cls(ws)
        await ws.send_json({"type": "connection_init", "payload": payload})
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        return client

    async def receive(self, wait: float = 10) -> dict[str, Any]:
        while True:
            message = await self.ws.receive(timeout=wait)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"websocket closed: {message.type} {message.data}")
            parsed: dict[str, Any] = json.loads(message.data)
            if parsed["type"] == "ping":
                await self.ws.send_json({"type": "pong"})
                continue
            return parsed

    async def subscribe(self, id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        await self.ws.send_json(
            {
                "id": id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )

    async def complete(self, id: str) -> None:
        await self.ws.send_json({"id": id, "type": "complete"})

    async def silence(self, seconds: float) -> None:
        """Asserts nothing arrives for `seconds`."""
        try:
            message = await self.receive(wait=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected silence, got {message}")

    async def close(self) -> None:
        await self.ws.close()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (its labels in any order)."""
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        if metric == name and dict(re.findall(r'(\w+)="([^"]*)"', rest)) == labels:
            return float(value)
    raise AssertionError(f"{name}{labels} not in metrics")
