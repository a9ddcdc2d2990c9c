"""Operating the service: metrics that count real requests, request ids that lead from a
response to its log line, a graceful SIGTERM, one sweeper at a time, and the catalogue."""

import asyncio
import logging
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from pymongo import AsyncMongoClient

from tests.api import Api, TransportWsClient, sample, token
from tests.conftest import SpawnServer, StartServer
from tests.support import FakeClock, snapshot
from tests.waits import until
from usercredits.models import OfferDocument
from usercredits.server.app import seed_catalogue
from usercredits.server.metrics import Metrics
from usercredits.server.sweeper import Lease, Sweeper
from usercredits.services import Services
from usercredits.services.catalogue.files import CatalogueErrors, export_catalogue, import_catalogue
from usercredits.services.identity.access import Role

ROOT = Path(__file__).resolve().parent.parent
ADMIN = token("admin-1", Role.ADMIN)
ALICE = token("alice")
CONSUME = """mutation C($key: String!) { consumeTokens(input: {offerGroup: "pro", tokens: 1,
  idempotencyKey: $key}) { id } }"""


async def test_metrics_count_real_requests(
    api: Api, http: aiohttp.ClientSession, server_url: str
) -> None:
    await api.data(
        """mutation { grantTokens(input: {userId: "alice", offerGroup: "pro",
                      tokens: 2, idempotencyKey: "g"}) { id } }""",
        as_=ADMIN,
    )
    client = await TransportWsClient.connect(
        http, server_url.replace("http", "ws") + "/graphql", {"authorization": f"Bearer {ALICE}"}
    )
    await client.subscribe("1", "subscription { balanceChanged { tokens } }")
    for key in ("a", "b"):
        await api.data(CONSUME, {"key": key}, as_=ALICE)
    assert await api.error_code(CONSUME, {"key": "c"}, as_=ALICE) == "INSUFFICIENT_TOKENS"
    assert await api.error_code("query { offers {", as_=ALICE) == "BAD_USER_INPUT"  # no parse
    assert await api.error_code("query { offerz { id } }", as_=ALICE) == "BAD_USER_INPUT"
    # Both debits went through the change feed once the balance it reports is 0 (the grant's
    # own event may come first: the feed gathers events for a moment).
    while (await client.receive())["payload"]["data"]["balanceChanged"]["tokens"] != 0:
        pass
    async with http.get(f"{server_url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    ops = "usercredits_graphql_operations_total"
    assert sample(text, ops, operation="consumeTokens", outcome="ok") == 2
    assert sample(text, ops, operation="consumeTokens", outcome="INSUFFICIENT_TOKENS") == 1
    assert sample(text, ops, operation="grantTokens", outcome="ok") == 1
    assert sample(text, ops, operation="invalid", outcome="BAD_USER_INPUT") == 2
    assert (
        sample(text, "usercredits_graphql_operation_seconds_count", operation="consumeTokens") == 3
    )
    assert sample(text, "usercredits_open_subscriptions") == 1
    # A subscription is counted and timed when it is set up, not when it ends.
    assert sample(text, ops, operation="balanceChanged", outcome="ok") == 1
    assert sample(text, "usercredits_ledger_entries_total", reason="consumption") == 2
    await client.close()


async def test_the_request_id_links_a_response_to_its_log_line(
    api: Api, http: aiohttp.ClientSession, server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    async with http.post(
        f"{server_url}/graphql",
        json={"query": "{ offers { id } }"},
        headers={"X-Request-ID": "req-42"},
    ) as response:
        assert response.headers["X-Request-ID"] == "req-42"
    async with http.get(f"{server_url}/healthz") as response:
        generated = response.headers["X-Request-ID"]

    def logged_both() -> bool:
        ids = {getattr(r, "request_id", None) for r in caplog.records}
        return {"req-42", generated} <= ids

    # A request's access line is written once its response is sent: after the client read it.
    await until(logged_both, seconds=5, what="both requests' access log lines")
    logged = {getattr(r, "request_id", None): r for r in caplog.records}
    assert logged["req-42"].__dict__["path"] == "/graphql"
    assert logged[generated].__dict__["status"] == 200


async def test_sigterm_closes_subscriptions_and_exits_cleanly(
    spawn_server: SpawnServer, http: aiohttp.ClientSession
) -> None:
    server = await spawn_server()
    client = await TransportWsClient.connect(
        http, server.url.replace("http", "ws") + "/graphql", {"authorization": f"Bearer {ALICE}"}
    )
    await client.subscribe("1", "subscription { balanceChanged { tokens } }")
    server.process.send_signal(signal.SIGTERM)
    closed = await client.ws.receive(timeout=20)
    assert closed.type == aiohttp.WSMsgType.CLOSE
    assert closed.data == aiohttp.WSCloseCode.GOING_AWAY
    assert await asyncio.wait_for(server.process.wait(), 30) == 0


async def test_only_one_instance_sweeps_at_a_time(
    mongo: AsyncMongoClient[Any], database_name: str, services: Services, clock: FakeClock
) -> None:
    leases = mongo[database_name]["leases"]
    await leases.delete_many({})
    ttl = timedelta(seconds=60)
    metrics = Metrics()
    sweepers = [
        Sweeper(
            services=services,
            lease=Lease(
                collection=leases, name="sweep", holder=f"instance-{i}", ttl=ttl, clock=clock
            ),
            reconcile_after=timedelta(minutes=15),
            metrics=metrics,
        )
        for i in range(2)
    ]
    for _ in range(3):
        results = await asyncio.gather(*(s.run_once() for s in sweepers))
        assert sum(r is not None for r in results) == 1
    # The same instance keeps the lease while it renews it...
    holder = (await leases.find_one({"_id": "sweep"}) or {})["holder"]
    # ...and another takes over once it lapses.
    clock.advance(seconds=61)
    idle = sweepers[1] if holder == "instance-0" else sweepers[0]
    assert await idle.run_once() is not None
    assert (await leases.find_one({"_id": "sweep"}) or {})["holder"] != holder


CATALOGUE = (ROOT / "catalogue" / "example.yaml").read_text()


async def test_catalogue_import_is_idempotent_and_dry_run_changes_nothing(
    services: Services,
) -> None:
    before = await snapshot()
    planned = await import_catalogue(offers=services.offers, text=CATALOGUE, dry_run=True)
    assert [c.action for c in planned] == ["create"] * 4
    assert await snapshot() == before
    created = await import_catalogue(offers=services.offers, text=CATALOGUE)
    assert [(c.key, c.action) for c in created] == [
        ("pro-monthly", "create"),
        ("chat-pack", "create"),
        ("chat-pack-early-bird", "create"),
        ("starter-bundle", "create"),
    ]
    again = await import_catalogue(offers=services.offers, text=CATALOGUE)
    assert {c.action for c in again} == {"unchanged"}
    assert await OfferDocument.count() == 4
    bundle = await OfferDocument.find_one({"key": "starter-bundle"})
    pro = await OfferDocument.find_one({"key": "pro-monthly"})
    assert bundle is not None and pro is not None
    assert bundle.combined_items[0].offer_id == str(pro.id)

    changed = CATALOGUE.replace(
        'prices: {USD: "4.99", EUR: "4.79"}', 'prices: {USD: "5.49", EUR: "4.79"}'
    )
    dry = await import_catalogue(offers=services.offers, text=changed, dry_run=True)
    assert [c.key for c in dry if c.action == "update"] == ["chat-pack"]
    pack = await OfferDocument.find_one({"key": "chat-pack"})
    assert pack is not None and pack.prices[0].minor_units == 499
    await import_catalogue(offers=services.offers, text=changed)
    pack = await OfferDocument.find_one({"key": "chat-pack"})
    assert pack is not None and pack.prices[0].minor_units == 549


async def test_an_exported_catalogue_imports_back_unchanged(services: Services) -> None:
    await import_catalogue(offers=services.offers, text=CATALOGUE)
    exported = export_catalogue(await services.offers.on_sale())
    offers = yaml.safe_load(exported)["offers"]
    assert [o["key"] for o in offers] == [
        "pro-monthly",
        "chat-pack",
        "chat-pack-early-bird",
        "starter-bundle",
    ]
    pack = next(o for o in offers if o["key"] == "chat-pack")
    assert pack["prices"] == {"USD": "4.99", "EUR": "4.79"}
    assert "appendDate" not in pack  # a default is left out
    bundle = next(o for o in offers if o["key"] == "starter-bundle")
    assert [i["offer"] for i in bundle["combinedItems"]] == ["pro-monthly", "chat-pack"]
    before = await snapshot()
    again = await import_catalogue(offers=services.offers, text=exported)
    assert {c.action for c in again} == {"unchanged"}
    assert await snapshot() == before
    assert export_catalogue(await services.offers.on_sale()) == exported


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "offers:\n  - key: a\n    name: A\n",
            ["line 2: missing kind, offerGroup, tokenCount, prices, cycle"],
        ),
        ("offers:\n  - key: a\n    name: [unclosed\n", ["line 4: "]),
        ("offers: 3\n", ["line 1: `offers:` must be a list"]),
        (
            "offers:\n  - {key: a, name: A, kind: TOKENS, offerGroup: g, tokenCount: 1,\n"
            "     prices: {USD: '1'}, cycle: ONCE, colour: red}\n",
            ["line 2: unknown field(s) colour"],
        ),
        (
            "offers:\n  - {key: a, name: A, kind: TOKENS, offerGroup: g, tokenCount: -1,\n"
            "     prices: {USD: '1'}, cycle: ONCE}\n"
            "  - {key: b, name: B, kind: TOKENS, offerGroup: g, tokenCount: 1,\n"
            "     prices: {XYZ: '1'}, cycle: ONCE}\n",
            ["line 2: offer 'a': tokenCount", "line 4: offer 'b': unknown currency"],
        ),
        (
            "offers:\n  - {key: a, name: A, kind: TOKENS, offerGroup: g, tokenCount: 1,\n"
            "     prices: {USD: '-1'}, cycle: ONCE}\n",
            ["line 2: offer 'a': prices: the USD price is negative"],
        ),
    ],
)
async def test_bad_catalogues_give_line_level_errors_and_change_nothing(
    services: Services, text: str, problems: list[str]
) -> None:
    before = await snapshot()
    with pytest.raises(CatalogueErrors) as raised:
        await import_catalogue(offers=services.offers, text=text)
    assert len(raised.value.problems) == len(problems)
    for problem, expected in zip(raised.value.problems, problems, strict=True):
        assert problem.startswith(expected), problem
    assert await snapshot() == before


async def test_a_first_start_seeds_the_example_catalogue(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    seed = ROOT / "catalogue" / "example.yaml"
    api = Api(http, f"{await start_server(seed_catalogue=seed)}/graphql")
    names = {o["name"] for o in (await api.data("query { offers { name } }"))["offers"]}
    assert names == {"Pro (monthly)", "500 chat tokens", "Starter bundle"}
    # A second start finds offers and loads nothing.
    await start_server(seed_catalogue=seed)
    assert await OfferDocument.count() == 4


async def test_workers_starting_together_seed_the_catalogue_once(services: Services) -> None:
    await asyncio.gather(*(seed_catalogue(services, CATALOGUE) for _ in range(3)))
    keys = sorted(o.key or "" for o in await services.offers.on_sale())
    assert keys == ["chat-pack", "chat-pack-early-bird", "pro-monthly", "starter-bundle"]
    assert await OfferDocument.count() == 4
