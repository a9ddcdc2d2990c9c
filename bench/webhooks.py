"""Scenario: what outbound webhooks cost a debit.

`consumeTokens` over HTTP by 32 clients over 200 funded wallets (10,000 other balances),
as in the debits scenario, on a service of its own, taking turns between two states of the
same service: no webhook endpoint enabled (the relay reads nothing), and one endpoint
enabled with an alert rule on the debited group (the relay follows the change stream,
decides each balance's alert state and stores its resume token after every batch). The
rule's threshold is never reached, so the figure is the relay's standing cost, not the
deliveries'. Between turns the endpoint is switched and the relay given time to follow
suit (untimed).
"""

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from bench import seed
from bench.debits import CLIENTS, CONSUME, OTHER_BALANCES, TOKENS, TURNS, WALLETS
from bench.harness import (
    SECRET,
    Bench,
    BenchFailure,
    GraphQL,
    http_session,
    log,
    user_token,
)
from bench.load import alternating
from bench.report import Goal, GoalKind, Row, ScenarioResult
from usercredits.server.auth import TokenRules, issue_token
from usercredits.server.database import init_models
from usercredits.services.identity.access import Role

RELAY_SECONDS = 0.1
SETTLE_SECONDS = 1.0
"""Untimed, after switching the endpoint: ten of the relay's checks."""

ENDPOINT = """mutation E($url: String!) {
  createWebhookEndpoint(input: {url: $url}) { endpoint { id } } }"""
SWITCH = """mutation S($id: ID!, $url: String!, $on: Boolean!) {
  updateWebhookEndpoint(id: $id, input: {url: $url, enabled: $on}) { enabled } }"""
RULE = """mutation R($group: String!) {
  setAlertRule(input: {offerGroup: $group, lowBalance: 1}) { offerGroup } }"""


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[str, list[str]]]:
    """A local receiver: its URL, and the webhook ids it got."""
    received: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(request.headers.get("webhook-id", ""))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/", received
    finally:
        await runner.cleanup()


async def run(bench: Bench) -> ScenarioResult:
    database = bench.database_name("webhooks")
    users = seed.users("debit", WALLETS)
    await init_models(bench.client, database)
    await seed.wallets(bench.client, database, users, TOKENS)
    await seed.wallets(bench.client, database, seed.users("other", OTHER_BALANCES), 100)
    keys = itertools.count()
    turns = [itertools.cycle(users[w::CLIENTS]) for w in range(CLIENTS)]
    tokens = {u: user_token(u) for u in users}
    admin = issue_token(rules=TokenRules(secret=SECRET), user_id="bench", roles=[Role.ADMIN])
    env = {"USERCREDITS_WEBHOOK_RELAY_SECONDS": str(RELAY_SECONDS)}
    async with (
        bench.service(database, env) as server,
        http_session(CLIENTS) as session,
        receiver() as (url, received),
    ):
        api = GraphQL(session, server.graphql_url)
        created = await api.data(ENDPOINT, {"url": url}, token=admin)
        endpoint_id = created["createWebhookEndpoint"]["endpoint"]["id"]
        await api.data(RULE, {"group": seed.GROUP}, token=admin)

        def switch(on: bool) -> Callable[[], Awaitable[None]]:
            async def apply() -> None:
                await api.data(SWITCH, {"id": endpoint_id, "url": url, "on": on}, token=admin)
                await asyncio.sleep(SETTLE_SECONDS)

            return apply

        async def debit(worker: int) -> None:
            user = next(turns[worker])
            variables = {
                "input": {"offerGroup": seed.GROUP, "tokens": 1, "idempotencyKey": f"w{next(keys)}"}
            }
            await api.data(CONSUME, variables, token=tokens[user])

        measured = await alternating(
            {"no endpoint": debit, "an endpoint and an alert rule": debit},
            before={"no endpoint": switch(False), "an endpoint and an alert rule": switch(True)},
            concurrency=CLIENTS,
            seconds=bench.seconds,
            warmup=bench.warmup,
            turns=TURNS,
        )
    if received:
        raise BenchFailure(f"the rule's threshold was reached: {len(received)} deliveries")
    off, on = measured.values()
    log(f"webhooks: {off.throughput:,.0f} ops/s without, {on.throughput:,.0f} with")
    rows = [
        Row(
            f"webhooks: `consumeTokens` GraphQL, no endpoint enabled ({CLIENTS} clients)",
            off.throughput,
            "ops/s",
            errors=off.errors,
        ),
        Row(
            f"webhooks: `consumeTokens` GraphQL, an endpoint and an alert rule ({CLIENTS} clients)",
            on.throughput,
            "ops/s",
            baseline=off.throughput,
            baseline_label="no endpoint",
            goal=Goal(GoalKind.RATIO_AT_LEAST, 0.8, ">= 0.8 of no endpoint"),
            errors=on.errors,
        ),
    ]
    notes = [
        f"**webhooks**: `consumeTokens` over HTTP, {CLIENTS} clients over {WALLETS} wallets as "
        "in **debits**, on a service of its own, taking turns between no endpoint enabled "
        "and one endpoint enabled with an alert rule on the debited group (whose threshold "
        "is never reached: the relay's standing cost, with no deliveries). "
        f"{SETTLE_SECONDS:g} s untimed after each switch for the relay to "
        "follow suit.",
    ]
    return ScenarioResult(
        name="webhooks",
        rows=rows,
        data={"off": off.summary(), "on": on.summary()},
        notes=notes,
    )
