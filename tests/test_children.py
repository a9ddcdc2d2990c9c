"""Child processes die with their parent and stop in bounded time (server/children.py), so
a killed test run or server leaves no database behind."""

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from usercredits.server import children

PROJECT_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")

PARENT = """
import asyncio, sys
from usercredits.server import children

async def main():
    child = await children.launch(sys.argv[1], "sleep", "600")
    print(child.pid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def group_alive(group: int) -> bool:
    """Whether a process of `group` still runs (a zombie has exited)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # it exited while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


async def gone(group: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not group_alive(group):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("mode", [children.DIE_WITH_PARENT, children.WATCH_PARENT])
async def test_a_child_dies_with_its_parent(mode: str) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PARENT,
        mode,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        group = int(await asyncio.wait_for(parent.stdout.readline(), 20))
        assert group_alive(group)
    finally:
        parent.kill()
        await parent.wait()
    assert await gone(group, 5), f"the child's group {group} outlived its parent ({mode})"


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(600)"
    )
    child = await children.spawn(sys.executable, "-c", stubborn, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 20) == b"ready\n"
    started = time.monotonic()
    await children.stop(child, grace_seconds=0.5)
    assert child.returncode == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5
    assert await gone(child.pid, 5)


def test_a_test_that_hangs_stops_the_run_within_its_timeout(tmp_path: Path) -> None:
    """The suite's bound (pyproject's pytest-timeout settings) holds: a hanging test
    ends the run with the stacks of every thread instead of waiting for CI's limit."""
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hang():\n    time.sleep(600)\n")
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-o",
            "timeout=1",
            str(tmp_path / "test_hang.py"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert run.returncode != 0
    assert "Timeout" in run.stdout + run.stderr
    assert "test_hang" in run.stdout + run.stderr
