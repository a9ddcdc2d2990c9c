"""`usercredits serve --workers N`: N server processes on one port, so that a host with more
cores uses them.

Python runs one thread of Python at a time, so one process uses one core. Each worker is a
whole `usercredits serve` of its own (its change stream, its subscribers, its rate limits)
listening on the same port with SO_REUSEPORT, and the kernel spreads new connections over
them. They share nothing but the database: the sweep's lease keeps background work to one
of them at a time, as it does across machines. This process only supervises: it starts the
embedded database when none is configured, starts the workers (which die with it), starts
again a worker that exits (one a second at most, so a worker that cannot start does not
spin), and on SIGTERM or SIGINT stops them all in bounded time.
"""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from usercredits.server import children
from usercredits.server.database import database_uri
from usercredits.server.settings import Settings

log = logging.getLogger(__name__)

RESTART_SECONDS = 1.0


class Workers:
    def __init__(self, settings: Settings, *, host: str, port: int, count: int) -> None:
        self._settings = settings
        self._argv: Sequence[str] = (
            *("-m", "usercredits.server.cli", "serve", "--worker"),
            *("--host", host, "--port", str(port), "--workers", "1"),
        )
        self._count = count
        self._running: dict[int, asyncio.subprocess.Process] = {}

    async def run(self) -> None:
        """Runs the workers until SIGTERM or SIGINT, then stops them and the database."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        async with database_uri(self._settings) as uri:
            env = {**os.environ, "USERCREDITS_MONGODB_URI": uri}
            keepers = [
                asyncio.create_task(self._keep(slot, env, stopping)) for slot in range(self._count)
            ]
            try:
                await stopping.wait()
            finally:
                for keeper in keepers:
                    keeper.cancel()
                await asyncio.gather(*keepers, return_exceptions=True)
                await asyncio.gather(*(children.stop(p) for p in self._running.values()))

    async def _keep(self, slot: int, env: dict[str, str], stopping: asyncio.Event) -> None:
        """Keeps worker `slot` running until the service stops."""
        while not stopping.is_set():
            process = await children.spawn(sys.executable, *self._argv, env=env)
            self._running[slot] = process
            log.info("worker started", extra={"slot": slot, "pid": process.pid})
            code = await process.wait()
            if not stopping.is_set():
                log.warning("worker exited; starting another", extra={"slot": slot, "code": code})
                await asyncio.sleep(RESTART_SECONDS)
