"""The embedded database: a SecantusDB server run as a separate process on loopback.

SecantusDB is GPL-2.0, so it is only ever launched as a program, never imported. It is
started as a one-node replica set (not `--standalone`), because transactions and change
streams need one, and clients connect with `retryWrites=false`: SecantusDB scans its
retryable-write records on every such write, which costs a factor of ten in throughput.
"""

import asyncio
import logging
import shutil
import socket
import sys
from pathlib import Path
from types import TracebackType

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from usercredits.server import children

log = logging.getLogger(__name__)

URI_OPTIONS = "directConnection=true&retryWrites=false"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_program() -> str:
    beside = Path(sys.executable).parent / "secantusd-py"
    found = str(beside) if beside.exists() else shutil.which("secantusd-py")
    if found is None:
        raise RuntimeError(
            "secantusd-py was not found: install the embedded database with "
            "`pip install 'usercredits-graphql[embedded]'`, or set USERCREDITS_MONGODB_URI"
        )
    return found


class EmbeddedDatabase:
    """`async with EmbeddedDatabase(path) as uri:` runs the server for the block's duration."""

    def __init__(self, storage: Path, *, port: int | None = None) -> None:
        self.storage = storage
        self.port = port or free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/?{URI_OPTIONS}"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, startup_seconds: float = 30.0) -> str:
        self.storage.mkdir(parents=True, exist_ok=True)
        self._process = await children.spawn(
            _server_program(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage),
            "--log-level",
            "WARNING",
            stdout=asyncio.subprocess.DEVNULL,
        )
        log.info("embedded database starting", extra={"port": self.port, "path": str(self.storage)})
        await self._wait_ready(startup_seconds)
        return self.uri

    async def _wait_ready(self, startup_seconds: float) -> None:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.uri, serverSelectionTimeoutMS=500
        )
        deadline = asyncio.get_running_loop().time() + startup_seconds
        try:
            while True:
                if self._process is not None and self._process.returncode is not None:
                    raise RuntimeError(f"secantusd-py exited with {self._process.returncode}")
                try:
                    await client.admin.command("ping")
                    return
                except PyMongoError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise RuntimeError(
                            f"the embedded database did not start on port "
                            f"{self.port} within {startup_seconds}s"
                        ) from None
                    await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def stop(self) -> None:
        if self._process is not None:
            await children.stop(self._process)

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
