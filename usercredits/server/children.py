"""Child processes (the embedded database, test and bench servers) that never outlive
their parent and always stop in bounded time.

A test run killed from outside, or a `usercredits serve` that crashed, must not leave a
database server behind: one left running at full CPU slows every later run, and holds its
port and files. So each child starts in a process group of its own through a launcher
(this file, run as a script, which imports nothing of the project): on Linux it asks the
kernel to kill it when its parent dies (PR_SET_PDEATHSIG) and then becomes the program;
elsewhere it stays as a watchdog that kills the program's group when its parent is gone.
Stopping sends SIGTERM to the whole group, then SIGKILL after a grace period: a server
that ignores SIGTERM for seconds cannot hang its parent.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

GRACE_SECONDS = 10.0
WATCH_SECONDS = 0.5
PR_SET_PDEATHSIG = 1
DIE_WITH_PARENT = "die-with-parent"
"""Launcher mode: the kernel kills the program when its parent dies (Linux)."""
WATCH_PARENT = "watch-parent"
"""Launcher mode: a watchdog process kills the program when its parent is gone."""


async def spawn(program: str, *args: str, **options: Any) -> asyncio.subprocess.Process:
    """Starts `program` as a child that dies with this process, in a process group of its
    own; `options` are asyncio.create_subprocess_exec's."""
    mode = DIE_WITH_PARENT if sys.platform == "linux" else WATCH_PARENT
    return await launch(mode, program, *args, **options)


async def launch(mode: str, program: str, *args: str, **options: Any) -> asyncio.subprocess.Process:
    """`spawn` with the launcher mode chosen (tests try both)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        mode,
        str(os.getpid()),
        program,
        *args,
        start_new_session=True,
        **options,
    )


async def stop(process: asyncio.subprocess.Process, grace_seconds: float = GRACE_SECONDS) -> None:
    """Asks the child's group to stop (SIGTERM) and kills it if the child has not exited
    within the grace period."""
    if process.returncode is not None:
        return
    _signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace_seconds)
    except TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it is already gone
        os.killpg(group, signum)


def _die_with_parent(parent: int, argv: list[str]) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the request took effect
        sys.exit(1)
    os.execvp(argv[0], argv)


def _watch_parent(parent: int, argv: list[str]) -> None:
    child = subprocess.Popen(argv, close_fds=False)  # what it was handed is the program's
    # A stop signals the whole group, so the program gets it too: wait for it to exit.
    # (Ignored only now: a child inherits ignored signals.)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while child.poll() is None:
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)
        time.sleep(WATCH_SECONDS)
    sys.exit(child.returncode)


if __name__ == "__main__":
    mode, parent, *program = sys.argv[1:]
    launcher = _die_with_parent if mode == DIE_WITH_PARENT else _watch_parent
    launcher(int(parent), program)
