"""`usercredits serve --workers 2` on the embedded database, as `make run` starts it on a
two-core machine: both workers answer on the one port, a worker that dies is replaced while
the other keeps serving, and SIGTERM stops the workers and the database."""

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.api import SECRET, Api, token
from tests.conftest import answered_by
from tests.waits import until
from usercredits.server import children
from usercredits.server.cli import default_workers
from usercredits.server.embedded import free_port
from usercredits.server.settings import Settings
from usercredits.services.identity.access import Role

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")


def children_of(parent: int) -> dict[int, str]:
    """The live child processes of `parent`, with their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            command = (stat.parent / "cmdline").read_text().replace("\0", " ")
        except OSError:  # it exited while we looked
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            found[int(stat.parent.name)] = command
    return found


def running(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def workers_of(parent: int) -> set[int]:
    return {pid for pid, command in children_of(parent).items() if " --fd " in command}


Check = Callable[[], Awaitable[bool]]


def workers(
    parent: int, count: int, other_than: set[int] = frozenset()
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(workers_of(parent) - other_than) == count

    return check


async def ready(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def serve(data: Path, port: int, **env: str) -> asyncio.subprocess.Process:
    """`usercredits serve --workers 2` on an embedded database in `data`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("USERCREDITS_")}
    return await children.spawn(
        sys.executable,
        *("-m", "usercredits.server.cli", "serve", "--workers", "2", "--port", str(port)),
        env={**clean, "USERCREDITS_DATA_DIR": str(data), "USERCREDITS_JWT_SECRET": SECRET, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = free_port()
    process = await serve(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        await until(lambda: ready(url), seconds=60, every=0.1, what="the service is ready")
        yield process, url
    finally:
        await children.stop(process)


@pytest.mark.timeout(120)
async def test_two_workers_share_the_port_and_are_replaced_and_stopped(
    service: tuple[asyncio.subprocess.Process, str],
) -> None:
    process, url = service
    await until(workers(process.pid, 2), seconds=30, every=0.1, what="two workers")
    first = workers_of(process.pid)
    answering: set[int] = set()

    async def both_answer() -> bool:
        # A worker answers once it has started; the kernel gives each new connection to
        # one of those listening.
        answering.add(await answered_by(url))
        return answering == first

    await until(both_answer, seconds=60, every=0.1, what="both workers answer on the port")

    async with aiohttp.ClientSession() as http:
        await Api(http, f"{url}/graphql").data(
            """mutation { grantTokens(input: {userId: "u1", offerGroup: "pro", tokens: 7,
               idempotencyKey: "g1"}) { balanceAfter } }""",
            as_=token("admin", Role.ADMIN),
        )
    for _ in range(10):  # whichever worker answers, it reads the one database
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            api = Api(http, f"{url}/graphql")
            data = await api.data("{ wallet { balances { tokens } } }", as_=token("u1"))
        assert data == {"wallet": {"balances": [{"tokens": 7}]}}

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    # New connections go on: the other worker's at once, the killed one's wait in its
    # socket's backlog for the worker that replaces it. None is refused.
    answers = await asyncio.gather(*(answered_by(url) for _ in range(20)))
    await until(
        workers(process.pid, 2, frozenset({victim})),
        seconds=30,
        every=0.1,
        what="a new worker replaces the killed one",
    )
    assert victim not in answers
    assert set(answers) <= workers_of(process.pid), "only live workers answered"

    everything = set(children_of(process.pid))
    assert len(everything) == 3, "two workers and the embedded database"
    os.kill(process.pid, signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert not running(everything), "no worker or database outlives the service"


@pytest.mark.timeout(120)
async def test_a_second_service_on_the_same_port_fails_instead_of_sharing_it(
    service: tuple[asyncio.subprocess.Process, str], tmp_path: Path
) -> None:
    _, url = service
    port = int(url.rsplit(":", 1)[1])
    second = await serve(tmp_path / "second", port)
    try:
        assert await asyncio.wait_for(second.wait(), 60) != 0
    finally:
        await children.stop(second)


@pytest.mark.timeout(120)
async def test_workers_that_keep_failing_to_start_stop_the_service(tmp_path: Path) -> None:
    broken = tmp_path / "catalogue.yaml"
    broken.write_text("offers: 3\n")  # every worker fails to load it at start
    process = await serve(tmp_path, free_port(), USERCREDITS_SEED_CATALOGUE=str(broken))
    try:
        assert await asyncio.wait_for(process.wait(), 100) == 1
    finally:
        await children.stop(process)


def test_one_worker_by_default_with_the_sandbox_one_per_core_with_stripe() -> None:
    """A sandbox payment lives in the memory of the process that made it: with several
    workers, the demo's purchase could be completed through another and not be found."""
    assert default_workers(Settings()) == 1
    stripe = Settings(stripe_secret_key="sk_test_x", stripe_webhook_secret="whsec_x")
    assert default_workers(stripe) == (os.cpu_count() or 1)
