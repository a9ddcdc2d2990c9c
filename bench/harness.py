"""What the scenarios run against: the database, the service in its own process, and a
GraphQL-over-HTTP client.

The service runs as `python -m usercredits.server.cli serve`, a separate process, for two
reasons: the load generator must not share the server's event loop (that would measure the client as
much as the server), and the server's memory (RSS) must be readable on its own. The raw
baselines and the in-process service call use a client in this process, on the same URI,
so they get the same connection options as the service (`retryWrites=false` on the
embedded server).
"""

import asyncio
import os
import platform
import resource
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import aiohttp
from pymongo import AsyncMongoClient

from usercredits.server import children
from usercredits.server.auth import TokenRules, issue_token
from usercredits.server.embedded import EmbeddedDatabase, free_port
from usercredits.services.identity.access import Role

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET = f"bench-{uuid.uuid4().hex}-{uuid.uuid4().hex}"
"""The JWT secret the bench's service processes are started with (fresh every run)."""


class BenchFailure(Exception):
    """An operation under load did not do what it should (a GraphQL error, no match)."""


def log(message: str) -> None:
    """Progress for the person running the bench (stderr, so stdout keeps the table)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def raise_open_file_limit(wanted: int) -> int:
    """Raises this process's soft RLIMIT_NOFILE toward `wanted` (capped by the hard limit).

    Call it before starting the service: a child inherits the limit at spawn time, and the
    fan-out scenario holds a thousand websockets on each side.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def user_token(user_id: str) -> str:
    return issue_token(rules=TokenRules(secret=SECRET), user_id=user_id, roles=[Role.USER])


class Database:
    """`async with Database(workdir) as db:` the configured MongoDB, or an embedded one.

    With USERCREDITS_MONGODB_URI set, that server is used as it is (each scenario uses its
    own database and drops it afterwards); otherwise a SecantusDB is started in `workdir`.
    """

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._embedded: EmbeddedDatabase | None = None
        self.uri = ""
        self.description = ""

    async def __aenter__(self) -> "Database":
        configured = os.environ.get("USERCREDITS_MONGODB_URI")
        if configured:
            self.uri = configured
        else:
            self._embedded = EmbeddedDatabase(self._workdir / "db")
            self.uri = await self._embedded.start()
        self.description = await self._describe()
        return self

    async def _describe(self) -> str:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.uri)
        try:
            info = await client.admin.command("buildInfo")
        finally:
            await client.close()
        version = str(info.get("version", "?"))
        if self._embedded is None:
            return f"MongoDB {version} (USERCREDITS_MONGODB_URI)"
        try:
            package = metadata.version("SecantusDB")
        except metadata.PackageNotFoundError:
            package = "?"
        return f"SecantusDB {package} (embedded, reports MongoDB {version})"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._embedded is not None:
            await self._embedded.stop()


class ServiceProcess:
    """`async with ServiceProcess(...) as server:` `usercredits serve` on one database.

    Started with `sys.executable -m usercredits.server.cli serve`, the sandbox payment
    provider and the bench's JWT secret; ready once GET /readyz answers 200.
    """

    def __init__(
        self,
        *,
        uri: str,
        database: str,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.graphql_url = f"{self.url}/graphql"
        self.ws_url = f"ws://127.0.0.1:{self.port}/graphql"
        self._log_path = log_path
        self._env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("USERCREDITS_STRIPE_")
        }
        self._env.update(
            {
                "USERCREDITS_MONGODB_URI": uri,
                "USERCREDITS_DATABASE": database,
                "USERCREDITS_JWT_SECRET": SECRET,
                # The bench's thousands of callers share one address and a few users.
                "USERCREDITS_RATE_LIMIT_PER_SECOND": "0",
                "USERCREDITS_MAX_OPERATIONS_IN_FLIGHT": "0",
                "USERCREDITS_MAX_SOCKETS_PER_USER": "0",
                "USERCREDITS_MAX_SOCKETS_PER_ADDRESS": "0",
                "USERCREDITS_WORKERS": "1",  # its pid is the server's (profiles, memory)
                **(env or {}),
            }
        )
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the service is not running")
        return self._process.pid

    async def __aenter__(self) -> "ServiceProcess":
        stderr = open_log(self._log_path)
        try:
            self._process = await children.spawn(
                sys.executable,
                "-m",
                "usercredits.server.cli",
                "serve",
                "--port",
                str(self.port),
                cwd=PROJECT_ROOT,
                env=self._env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        finally:
            stderr.close()
        try:
            await self._wait_ready(60.0)
        except BaseException:
            await self.stop()
            raise
        return self

    async def _wait_ready(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                if self._process is not None and self._process.returncode is not None:
                    break
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(
            f"the service did not become ready on port {self.port}; its log: {self._log_path}"
        )

    def rss_kb(self) -> int:
        """The service's resident memory now (VmRSS, Linux)."""
        return read_rss_kb(self.pid)

    async def stop(self) -> None:
        if self._process is not None:
            await children.stop(self._process)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def open_log(path: Path) -> BinaryIO:
    """A log file for a child process (opened here, not in async code, which must not block)."""
    return path.open("ab")


def read_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class GraphQL:
    """POSTs documents to the service; `data` raises BenchFailure on any error."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._session.post(
            self._url, json={"query": query, "variables": variables or {}}, headers=headers
        ) as response:
            body: dict[str, Any] = await response.json(content_type=None)
            if response.status != 200 or body.get("errors"):
                raise BenchFailure(f"HTTP {response.status}: {body.get('errors') or body}")
            data: dict[str, Any] = body["data"]
            return data


def http_session(connections: int) -> aiohttp.ClientSession:
    """One client session for a scenario; `connections` 0 means no pool limit."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))


@dataclass
class Bench:
    """What every scenario gets: the database, a client to it, and the time it may take."""

    database: Database
    client: AsyncMongoClient[Any]
    workdir: Path
    seconds: float
    warmup: float
    py_spy: str | None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    databases: list[str] = field(default_factory=list)

    def database_name(self, scenario: str) -> str:
        """A fresh database per scenario, dropped when the bench ends."""
        name = f"usercredits_bench_{self.run_id}_{scenario}"
        self.databases.append(name)
        return name

    def service(
        self, database: str, env: dict[str, str] | None = None, *, workers: int = 1
    ) -> ServiceProcess:
        """`usercredits serve` over `database`, with `workers` processes."""
        return ServiceProcess(
            uri=self.database.uri,
            database=database,
            log_path=self.workdir / f"service-{database}-{workers}.log",
            env={"USERCREDITS_WORKERS": str(workers), **(env or {})},
        )


def machine(database: Database) -> dict[str, Any]:
    """Where the figures come from: they mean little without it. Call it before the load
    starts: the load average says whether something else was busy on the machine."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "database": database.description,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": round(os.getloadavg()[0], 2),
    }
