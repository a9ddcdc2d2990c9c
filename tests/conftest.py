"""Test fixtures: one real MongoDB-wire server per session, a clean database per test.

With USERCREDITS_MONGODB_URI set the suite uses that server instead (for example a real
mongod replica set), so the same tests run against MongoDB itself.
"""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.api import SECRET, Api
from tests.fake_stripe import FakeStripe, server_settings
from tests.shop import Shop
from tests.support import FakeClock
from usercredits.models import ALL_DOCUMENTS
from usercredits.models.collections import Collections
from usercredits.server import children
from usercredits.server.app import create_app
from usercredits.server.database import connect, init_models
from usercredits.server.embedded import EmbeddedDatabase, free_port
from usercredits.server.logs import JsonAccessLogger
from usercredits.server.settings import Settings
from usercredits.services import Services, build_services
from usercredits.services.clock import Clock
from usercredits.services.payments import SandboxPaymentClient


@pytest.fixture(scope="session")
async def database_uri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    configured = os.environ.get("USERCREDITS_MONGODB_URI")
    if configured:
        yield configured
        return
    storage: Path = tmp_path_factory.mktemp("secantus")
    async with EmbeddedDatabase(storage) as uri:
        yield uri


@pytest.fixture(scope="session")
def database_name() -> str:
    return f"usercredits_test_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def mongo(database_uri: str, database_name: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    client = connect(database_uri)
    await init_models(client, database_name)
    yield client
    await client.drop_database(database_name)
    await client.close()


@pytest.fixture(autouse=True)
async def clean_database(mongo: AsyncMongoClient[Any]) -> None:
    """Empties every collection (keeping its indexes) before each test."""
    for document in ALL_DOCUMENTS:
        await document.get_pymongo_collection().delete_many({})
    # Leases of the sweep and the webhook relay (a killed server may have left one).
    await ALL_DOCUMENTS[0].get_pymongo_collection().database["leases"].delete_many({})


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    yield FakeClock()


@pytest.fixture
def sandbox() -> SandboxPaymentClient:
    """The sandbox of the test's servers (on the wall clock; a test moving time for its
    plans sets its `clock`)."""
    return SandboxPaymentClient()


@pytest.fixture
def database(mongo: AsyncMongoClient[Any], database_name: str) -> AsyncDatabase[Any]:
    """The test database, for a test that builds services of its own."""
    return mongo[database_name]


@pytest.fixture
def collections(database: AsyncDatabase[Any]) -> Collections:
    """The test database's collections, for a test that builds a service of its own."""
    return Collections.of(database)


@pytest.fixture
def services(
    database: AsyncDatabase[Any], clock: FakeClock, sandbox: SandboxPaymentClient
) -> Services:
    return build_services(database=database, payments=sandbox, clock=clock, default_currency="USD")


class StartServer(Protocol):
    async def __call__(self, *, clock: Clock | None = None, **settings: Any) -> str:
        """Starts one more API instance on the test database (on `clock` if given);
        returns its base URL."""
        ...


class Servers:
    """The API instances of one test, in this process, on the test database."""

    def __init__(self, database_uri: str, database_name: str, sandbox: SandboxPaymentClient):
        self._database_uri = database_uri
        self._database_name = database_name
        self._sandbox = sandbox
        self._runners: dict[str, web.AppRunner] = {}

    async def start(self, *, clock: Clock | None = None, port: int = 0, **overrides: Any) -> str:
        """Starts an instance (on `port`, or any free one); returns its base URL."""
        # No periodic sweep unless a test asks for one: it would race the test's own steps.
        # No rate limit or bound on operations in flight either: many tests are one caller
        # sending a burst on purpose. No cap on sockets per address: all come from 127.0.0.1.
        settings = Settings(
            mongodb_uri=self._database_uri,
            database=self._database_name,
            **{
                "jwt_secret": SECRET,
                "sweep_interval_seconds": 0,
                "rate_limit_per_second": 0,
                "max_operations_in_flight": 0,
                "max_sockets_per_address": 0,
                **overrides,
            },
        )
        # With a Stripe key the app builds its own Stripe client from the settings.
        provider = None if settings.stripe_secret_key else self._sandbox
        runner = web.AppRunner(
            create_app(settings, payments=provider, clock=clock),
            access_log_class=JsonAccessLogger,
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        host, bound = runner.addresses[0][:2]
        url = f"http://{host}:{bound}"
        self._runners[url] = runner
        return url

    async def stop(self, url: str) -> None:
        """Stops the instance at `url` as a deploy would: its websockets are closed."""
        await self._runners.pop(url).cleanup()

    async def stop_all(self) -> None:
        for url in reversed(list(self._runners)):
            await self.stop(url)


@pytest.fixture
async def servers(
    mongo: AsyncMongoClient[Any],
    database_uri: str,
    database_name: str,
    sandbox: SandboxPaymentClient,
) -> AsyncIterator[Servers]:
    running = Servers(database_uri, database_name, sandbox)
    yield running
    await running.stop_all()
    # Beanie binds documents process-wide: give them back to the session's client.
    await init_models(mongo, database_name)


@pytest.fixture
def start_server(servers: Servers) -> StartServer:
    return servers.start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server_url(start_server: StartServer) -> str:
    return await start_server()


@pytest.fixture
def api(http: aiohttp.ClientSession, server_url: str) -> Api:
    return Api(http, f"{server_url}/graphql")


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    url: str


def serve_env(database_uri: str, database_name: str, **overrides: str) -> dict[str, str]:
    """The environment of `usercredits serve` on the test database: this process's, without
    a worker count (serve picks its default), with the test secret and no rate limit."""
    env = {name: value for name, value in os.environ.items() if name != "USERCREDITS_WORKERS"}
    return env | {
        "USERCREDITS_MONGODB_URI": database_uri,
        "USERCREDITS_DATABASE": database_name,
        "USERCREDITS_JWT_SECRET": SECRET,
        "USERCREDITS_RATE_LIMIT_PER_SECOND": "0",
        **overrides,
    }


async def serve(port: int, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`usercredits serve` on `port` in a process of its own, which dies with this one."""
    return await children.spawn(
        sys.executable,
        "-m",
        "usercredits.server.cli",
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


class SpawnServer(Protocol):
    async def __call__(self, **env: str) -> ServerProcess:
        """Starts `usercredits serve` in its own process on the test database (`env`
        overrides its USERCREDITS_* variables) and waits until it is ready."""
        ...


@pytest.fixture
async def spawn_server(
    database_uri: str, database_name: str, http: aiohttp.ClientSession
) -> AsyncIterator[SpawnServer]:
    started: list[ServerProcess] = []

    async def spawn(**overrides: str) -> ServerProcess:
        port = free_port()
        unbounded = {
            "USERCREDITS_MAX_OPERATIONS_IN_FLIGHT": "0",
            "USERCREDITS_MAX_SOCKETS_PER_ADDRESS": "0",
            "USERCREDITS_WORKERS": "1",  # its pid is the server's
        }
        env = serve_env(database_uri, database_name, **(unbounded | overrides))
        process = await serve(port, env)
        server = ServerProcess(process=process, url=f"http://127.0.0.1:{port}")
        started.append(server)
        for _ in range(300):
            try:
                async with http.get(f"{server.url}/readyz") as response:
                    if response.status == 200:
                        return server
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"usercredits serve on port {port} did not become ready")

    yield spawn
    for server in started:
        await children.stop(server.process)


@pytest.fixture
async def server_process(spawn_server: SpawnServer) -> str:
    """A second API instance in its own process, as behind a load balancer."""
    return (await spawn_server()).url


@asynccontextmanager
async def serving(fake: FakeStripe) -> AsyncIterator[str]:
    """Serves the fake Stripe API on a free port for the block; yields its base address."""
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, str]]:
    """The fake Stripe API and its base address."""
    fake = FakeStripe()
    async with serving(fake) as base:
        yield fake, base


@pytest.fixture
async def shop(
    http: aiohttp.ClientSession,
    start_server: StartServer,
    fake_stripe: tuple[FakeStripe, str],
) -> Shop:
    fake, api_base = fake_stripe
    base = await start_server(**server_settings(api_base))
    return Shop(Api(http, f"{base}/graphql"), http, base, fake)


@dataclass
class Deployed:
    """`usercredits serve` as it is deployed: Stripe configured (the fake), so one worker
    per core (two here), sharing one port. Its sweep is off, so that a test says when the
    sweep runs (`usercredits expire`)."""

    url: str
    database: str
    """Its own database: its workers' webhook relay, dispatcher and top-up trigger must not
    act on other tests' documents."""
    stripe: FakeStripe
    workers: set[int]
    """The pids of the workers seen answering."""

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"


async def answered_by(url: str) -> int:
    """The pid of the worker that answers a new connection, from its metrics."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.get(f"{url}/metrics") as got,
    ):
        text = await got.text()
    line = next(x for x in text.splitlines() if x.startswith("usercredits_worker_info"))
    return int(line.split('pid="')[1].split('"')[0])


@pytest.fixture(scope="session")
async def deployed(
    mongo: AsyncMongoClient[Any], database_uri: str, database_name: str
) -> AsyncIterator[Deployed]:
    fake = FakeStripe()
    database = f"{database_name}_deployed"
    async with serving(fake) as stripe_base:
        stripe = server_settings(stripe_base)
        env = serve_env(
            database_uri,
            database,
            USERCREDITS_SWEEP_INTERVAL_SECONDS="0",
            **{f"USERCREDITS_{name.upper()}": value for name, value in stripe.items()},
        )
        port = free_port()
        process = await serve(port, env)
        url = f"http://127.0.0.1:{port}"
        seen: set[int] = set()
        try:
            async with asyncio.timeout(60):
                while len(seen) < 2:  # both workers answer on the port
                    try:
                        seen.add(await answered_by(url))
                    except (aiohttp.ClientError, StopIteration):
                        await asyncio.sleep(0.1)
            yield Deployed(url=url, database=database, stripe=fake, workers=seen)
        finally:
            await children.stop(process)
            await mongo.drop_database(database)


@pytest.fixture
async def spread() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that opens a new connection for every request, so that the kernel hands
    successive requests to either worker of a deployed server."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        yield http
