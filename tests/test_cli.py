"""The command line beside a running `usercredits serve`, as with `make run`: the admin
commands act on the server's embedded database instead of failing on its lock, a record
left by a killed server does not mislead them, a folder held by a server that says nothing
is refused in one line, and every expected failure (a database that does not answer, a
port in use, a missing file, input a rule refuses) is one line and exit code 1, never a
traceback."""

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.api import SECRET
from tests.conftest import serve
from tests.support import run_cli
from tests.test_workers import ready
from tests.waits import until
from usercredits.server import children
from usercredits.server.embedded import ADDRESS_FILE, EmbeddedDatabase, free_port

CATALOGUE = Path(__file__).parent.parent / "catalogue" / "example.yaml"
API_KEYS = "{ apiKeys { id name revokedAt } }"


def cli_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """This process's environment without its USERCREDITS_ settings (the suite's database
    among them): the embedded database in `data_dir`, as `make run` has it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("USERCREDITS_")}
    return env | {
        "USERCREDITS_DATA_DIR": str(data_dir),
        "USERCREDITS_JWT_SECRET": SECRET,
        "USERCREDITS_WORKERS": "1",
        "USERCREDITS_RATE_LIMIT_PER_SECOND": "0",
        "USERCREDITS_SEED_CATALOGUE": str(CATALOGUE),
        **overrides,
    }


def one_line(stderr: str) -> str:
    """The failure's line, after checking it is the only line that is not a JSON log."""
    assert "Traceback" not in stderr, stderr
    said = [line for line in stderr.splitlines() if not line.startswith("{")]
    assert len(said) == 1 and said[0].startswith("usercredits: "), stderr
    return said[0]


@dataclass
class Running:
    data_dir: Path
    url: str
    process: asyncio.subprocess.Process


async def start(data_dir: Path) -> Running:
    port = free_port()
    process = await serve(port, cli_env(data_dir))
    url = f"http://127.0.0.1:{port}"
    try:
        await until(
            lambda: ready(url),
            seconds=60,
            every=0.1,
            what="usercredits serve on the embedded database",
        )
    except BaseException:
        await children.stop(process)
        raise
    return Running(data_dir=data_dir, url=url, process=process)


@pytest.fixture(scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """`make run`: a server on the embedded database of its data folder."""
    server = await start(tmp_path_factory.mktemp("make-run"))
    yield server
    await children.stop(server.process)


async def as_key(url: str, secret: str) -> dict[str, Any]:
    """The server's answer to an admin query made with the API key `secret`."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/graphql",
            json={"query": API_KEYS},
            headers={"Authorization": f"Bearer {secret}", "Accept": "application/json"},
        ) as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


def error_code(body: dict[str, Any]) -> str:
    code: str = body["errors"][0]["extensions"]["code"]
    return code


async def test_admin_commands_act_on_the_running_servers_database(running: Running) -> None:
    env = cli_env(running.data_dir)
    code, out, err = await run_cli("apikey", "create", "--name", "ops", "--role", "admin", env=env)
    assert code == 0 and "Traceback" not in err, err
    secret = out.strip()
    body = await as_key(running.url, secret)  # the server knows the key
    assert not body.get("errors"), body
    assert {"name": "ops", "revokedAt": None} in [
        {"name": key["name"], "revokedAt": key["revokedAt"]} for key in body["data"]["apiKeys"]
    ]

    code, out, err = await run_cli("offers", "export", env=env)
    assert code == 0 and "Traceback" not in err, err
    seeded = {offer["key"] for offer in yaml.safe_load(CATALOGUE.read_text())["offers"]}
    assert {offer["key"] for offer in yaml.safe_load(out)["offers"]} == seeded

    code, out, err = await run_cli("expire", env=env)
    assert code == 0 and "Traceback" not in err, err
    assert out.startswith("SweepResult(")
    assert await ready(running.url)  # the server's database is still up: it was not stopped


async def test_keys_are_listed_and_revoked_on_the_running_server(running: Running) -> None:
    env = cli_env(running.data_dir)
    code, out, _ = await run_cli("apikey", "create", "--name", "ci", "--role", "service", env=env)
    assert code == 0
    secret = out.strip()
    assert error_code(await as_key(running.url, secret)) == "FORBIDDEN"  # a service, known
    code, out, _ = await run_cli("apikey", "list", env=env)
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert rows[0] == ["id", "name", "role", "prefix", "created", "last used", "revoked"]
    ci = next(row for row in rows[1:] if row[1] == "ci")
    assert ci[2:4] == ["service", secret[:12]] and ci[6] == "-"

    code, out, err = await run_cli("apikey", "revoke", ci[0], env=env)
    assert code == 0 and f"API key {ci[0]} (ci) revoked at" in out, err

    async def refused() -> bool:
        return error_code(await as_key(running.url, secret)) == "UNAUTHENTICATED"

    await until(refused, seconds=5, every=0.1, what="the running server refuses the revoked key")
    code, out, _ = await run_cli("apikey", "list", env=env)
    assert [line.split("\t")[6] != "-" for line in out.splitlines() if ci[0] in line] == [True]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("apikey", "create", "--name", " ", "--role", "admin"), "an API key's name has 1 to"),
        (("apikey", "revoke", "0123456789abcdef01234567"), "does not exist"),
        (("offers", "import", "/nowhere/catalogue.yaml"), "cannot read /nowhere/catalogue.yaml"),
        (("offers", "export", "--output", "/nowhere/out.yaml"), "cannot write /nowhere/out.yaml"),
    ],
)
async def test_refused_input_is_one_line_and_changes_nothing(
    running: Running, args: tuple[str, ...], said: str
) -> None:
    env = cli_env(running.data_dir)
    _, before, _ = await run_cli("apikey", "list", env=env)
    code, _, err = await run_cli(*args, env=env)
    assert code == 1 and said in one_line(err)
    _, after, _ = await run_cli("apikey", "list", env=env)
    assert after == before


async def test_a_record_left_by_a_killed_server_does_not_mislead(tmp_path: Path) -> None:
    server = await start(tmp_path)
    os.kill(server.process.pid, signal.SIGKILL)  # its database dies with it
    await server.process.wait()
    record = tmp_path / "db" / ADDRESS_FILE
    assert record.exists()

    code, out, err = await run_cli("offers", "export", env=cli_env(tmp_path))
    assert code == 0 and "Traceback" not in err, err
    assert isinstance(yaml.safe_load(out)["offers"], list)
    logged = [json.loads(line)["message"] for line in err.splitlines() if line.startswith("{")]
    assert "embedded database starting" in logged  # on a database of its own,
    assert not record.exists()  # which recorded itself and was stopped after


async def test_a_folder_held_by_a_server_that_says_nothing_is_refused(tmp_path: Path) -> None:
    """A server on the folder that recorded nothing (or does not answer): the command waits
    for it, as it may be starting, then says what to do."""
    async with EmbeddedDatabase(tmp_path / "db"):
        (tmp_path / "db" / ADDRESS_FILE).unlink()
        env = cli_env(tmp_path, USERCREDITS_EMBEDDED_JOIN_SECONDS="1")
        code, _, err = await run_cli("expire", env=env, seconds=30)
    assert code == 1
    line = one_line(err)
    assert f"the embedded database in {tmp_path / 'db'} is held by another process" in line
    assert "USERCREDITS_MONGODB_URI" in line


@pytest.mark.parametrize(
    "args",
    [
        ("apikey", "create", "--name", "ops", "--role", "admin"),
        ("apikey", "list"),
        ("apikey", "revoke", "0123456789abcdef01234567"),
        ("expire",),
        ("migrate", "--dry-run"),
        ("offers", "import", str(CATALOGUE)),
        ("offers", "export"),
    ],
)
async def test_a_database_that_does_not_answer_is_one_line(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    env = cli_env(
        tmp_path,
        USERCREDITS_MONGODB_URI=f"mongodb://ops:hidden@127.0.0.1:{free_port()}/",
        USERCREDITS_DATABASE_TIMEOUT_MS="300",
    )
    code, _, err = await run_cli(*args, env=env)
    assert code == 1
    line = one_line(err)
    assert "the database at 127.0.0.1:" in line and "did not answer" in line
    assert "hidden" not in err


async def test_serve_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, out, err = await run_cli("serve", "--port", str(port), env=cli_env(tmp_path))
    assert code == 1 and out == ""  # no banner for a server that is not there
    assert one_line(err) == (
        f"usercredits: cannot listen on 127.0.0.1:{port} (Address already in use): stop what "
        "holds it, or pick another port (--port or USERCREDITS_PORT)"
    )
    assert not (tmp_path / "db").exists()  # no database was started for it


async def test_webhooks_listen_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, _, err = await run_cli(
            "webhooks", "listen", "--port", str(port), "--secret", "whsec_x", env=cli_env(tmp_path)
        )
    assert code == 1
    assert err == (
        f"usercredits: cannot listen on 127.0.0.1:{port} (Address already in use): stop what "
        "holds it, or pick another port (--port)\n"
    )


async def test_webhooks_listen_says_listening_once_it_is(tmp_path: Path) -> None:
    port = free_port()
    listener = await children.spawn(
        *(sys.executable, "-m", "usercredits.server.cli", "webhooks", "listen"),
        *("--port", str(port), "--secret", "whsec_x"),
        env=cli_env(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert listener.stderr is not None
        said = await asyncio.wait_for(listener.stderr.readline(), 30)
        assert said.decode().startswith(f"listening on http://127.0.0.1:{port}/")
        # At once, with no retry: the port was bound before the line was written.
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/", data="{}") as response,
        ):
            assert response.status == 400  # unsigned: refused by the listener itself
    finally:
        await children.stop(listener)
