"""`usercredits serve --workers N`: N server processes on one port, so that a host with more
cores uses them.

Python runs one thread of Python at a time, so one process uses one core. This process
binds N listening sockets to the port with SO_REUSEPORT, so that the kernel spreads new
connections evenly over them (one socket shared by all would go mostly to whichever
worker wakes first), and hands one to each of N workers: each a whole `usercredits serve`
of its own (its change stream, its subscribers, its rate limits), sharing nothing but the
database; the sweep's lease keeps background work to one of them at a time, as it does
across machines. The port is first bound without SO_REUSEPORT, which fails if anything
holds it, so a second service started on the same port fails instead of silently joining.
A slot's socket stays open while its worker is replaced: connections wait, none is refused.

This process only supervises: it starts the embedded database when none is configured,
starts the workers (which die with it), starts again a worker that exits, and on SIGTERM
or SIGINT stops them all in bounded time. Workers that keep exiting right after they start
(a setting the server refuses, a catalogue it cannot load) stop the service with an error
rather than being started again forever.
"""

import asyncio
import logging
import os
import signal
import socket
import sys

from usercredits.server import children
from usercredits.server.database import database_uri
from usercredits.server.ports import bind
from usercredits.server.settings import Settings

log = logging.getLogger(__name__)

RESTART_SECONDS = 1.0
STARTUP_SECONDS = 10.0
"""A worker that exits sooner than this after it started failed to start."""
FAILED_STARTS = 5
"""Failed starts in a row of one worker that stop the service."""


def listen(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on the port, one per worker (see the module's doc)."""
    bind(host, port).close()  # OSError if it is taken
    sockets = []
    for _ in range(count):
        listening = bind(host, port, reuse_port=True)
        listening.set_inheritable(True)
        sockets.append(listening)
    return sockets


class Workers:
    def __init__(self, settings: Settings, *, sockets: list[socket.socket]) -> None:
        """`sockets`: one listening socket per worker (`listen`), which the command binds
        before it announces the service; closed when the service stops."""
        self._settings = settings
        self._sockets = sockets
        self._running: dict[int, asyncio.subprocess.Process] = {}
        self._failed = False

    async def run(self) -> int:
        """Runs the workers until SIGTERM or SIGINT (then 0), or until one keeps failing
        to start (then 1); stops them and the database either way."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        try:
            async with database_uri(self._settings) as uri:
                env = {**os.environ, "USERCREDITS_MONGODB_URI": uri}
                keepers = [
                    asyncio.create_task(self._keep(slot, listening.fileno(), env, stopping))
                    for slot, listening in enumerate(self._sockets)
                ]
                try:
                    await stopping.wait()
                finally:
                    for keeper in keepers:
                        keeper.cancel()
                    await asyncio.gather(*keepers, return_exceptions=True)
                    await asyncio.gather(*(children.stop(p) for p in self._running.values()))
        finally:
            for listening in self._sockets:
                listening.close()
        return 1 if self._failed else 0

    async def _keep(self, slot: int, fd: int, env: dict[str, str], stopping: asyncio.Event) -> None:
        """Keeps worker `slot` running until the service stops."""
        loop = asyncio.get_running_loop()
        failed_starts = 0
        while not stopping.is_set():
            started = loop.time()
            try:
                process = await children.spawn(
                    sys.executable,
                    *("-m", "usercredits.server.cli", "serve", "--fd", str(fd), "--workers", "1"),
                    env=env,
                    pass_fds=(fd,),
                )
            except OSError:
                log.exception("a worker could not be started", extra={"slot": slot})
                code = None
            else:
                self._running[slot] = process
                log.info("worker started", extra={"slot": slot, "pid": process.pid})
                code = await process.wait()
            if stopping.is_set():
                return
            failed_starts = failed_starts + 1 if loop.time() - started < STARTUP_SECONDS else 0
            if failed_starts >= FAILED_STARTS:
                log.error(
                    "a worker keeps failing to start: stopping the service (see its log above)",
                    extra={"slot": slot, "code": code},
                )
                self._failed = True
                stopping.set()
                return
            log.warning("worker exited; starting another", extra={"slot": slot, "code": code})
            await asyncio.sleep(RESTART_SECONDS)
