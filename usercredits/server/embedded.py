"""The embedded database: a SecantusDB server run as a separate process on loopback.

SecantusDB is GPL-2.0, so it is only ever launched as a program, never imported. It is
started as a one-node replica set (not `--standalone`), because transactions and change
streams need one, and clients connect with `retryWrites=false`: SecantusDB scans its
retryable-write records on every such write, which costs a factor of ten in throughput.

Other processes on the machine can reach its port, so it requires a password (`--auth`,
SCRAM-SHA-256) of one user, `usercredits`, whose random password is kept in the data
folder. The folder is the owner's alone (mode 0700, and the server runs with umask 077, so
its files are too). SecantusDB has no first-user exception: its user is made by starting
it once without `--auth`. That start accepts only TLS clients holding a certificate made
for the occasion (server/certificates.py), so no other process can talk to it before the
password is required. A folder without the password file (a new one, or one from before)
is given a user that way, and a new password each time the file is missing.
"""

import asyncio
import logging
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote_plus

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

from usercredits.server import children
from usercredits.server.certificates import LoopbackTls, loopback_tls

log = logging.getLogger(__name__)

URI_OPTIONS = "directConnection=true&retryWrites=false"
USER = "usercredits"
PASSWORD_FILE = "usercredits-password"
"""In the storage folder: the password of USER."""
OWNER_ONLY = 0o700
AUTHENTICATION_FAILED = 18


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


def _tls_options(tls: LoopbackTls) -> list[str]:
    """The server's options that admit only clients with the one-off client certificate."""
    return [
        "--tls-cert-file",
        str(tls.server_certificate),
        "--tls-key-file",
        str(tls.server_key),
        "--tls-ca-file",
        str(tls.authority),
        "--tls-require-client-cert",
    ]


def _owner_only_files() -> None:
    """Runs in the server's process before it starts: the files it makes are its owner's
    only."""
    os.umask(0o077)


def _write_owner_only(path: Path, text: str) -> None:
    """Writes a new file that only its owner may read (replacing none)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


class EmbeddedDatabase:
    """`async with EmbeddedDatabase(path) as uri:` runs the server for the block's duration;
    `uri` carries the password (see the module doc)."""

    def __init__(self, storage: Path, *, port: int | None = None) -> None:
        self.storage = storage
        self.port = port or free_port()
        self.uri = ""
        """Set by `start`."""
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, startup_seconds: float = 30.0) -> str:
        self.storage.mkdir(mode=OWNER_ONLY, parents=True, exist_ok=True)
        self.storage.chmod(OWNER_ONLY)  # a folder made before, or under another umask
        password = await self._password(startup_seconds)
        self.uri = (
            f"mongodb://{USER}:{quote_plus(password)}@127.0.0.1:{self.port}/"
            f"?authSource=admin&{URI_OPTIONS}"
        )
        self._process = await self._spawn("--auth")
        log.info("embedded database starting", extra={"port": self.port, "path": str(self.storage)})
        try:
            await self._wait_ready(self.uri, startup_seconds)
        except BaseException:
            await self.stop()  # `async with` does not stop what failed to start
            raise
        return self.uri

    async def _password(self, startup_seconds: float) -> str:
        """The password kept in the folder, or a new one given to USER (module doc)."""
        kept = self.storage / PASSWORD_FILE
        if kept.exists():
            return kept.read_text().strip()
        password = secrets.token_urlsafe(32)
        with loopback_tls() as tls:
            self._process = await self._spawn(*_tls_options(tls))
            try:
                uri = f"mongodb://127.0.0.1:{self.port}/?{URI_OPTIONS}"
                options = {
                    "tls": True,
                    "tlsCAFile": str(tls.authority),
                    "tlsCertificateKeyFile": str(tls.client),
                }
                await self._wait_ready(uri, startup_seconds, **options)
                await self._make_user(uri, password, **options)
            finally:
                await self.stop()
        _write_owner_only(kept, password)
        log.info("embedded database user made", extra={"path": str(self.storage)})
        return password

    async def _make_user(self, uri: str, password: str, **options: Any) -> None:
        """Gives USER `password`, making it if it is not there yet."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, **options)
        try:
            found = await client.admin.command("usersInfo", USER)
            command = "updateUser" if found["users"] else "createUser"
            await client.admin.command(
                command, USER, pwd=password, roles=[{"role": "root", "db": "admin"}]
            )
        finally:
            await client.close()

    async def _spawn(self, *options: str) -> asyncio.subprocess.Process:
        return await children.spawn(
            _server_program(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage),
            "--log-level",
            "WARNING",
            *options,
            stdout=asyncio.subprocess.DEVNULL,
            # Not `umask=`: uvloop's subprocesses do not take it.
            **({"preexec_fn": _owner_only_files} if os.name == "posix" else {}),
        )

    async def _wait_ready(self, uri: str, startup_seconds: float, **options: Any) -> None:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            uri, serverSelectionTimeoutMS=500, **options
        )
        deadline = asyncio.get_running_loop().time() + startup_seconds
        try:
            while True:
                if self._process is not None and self._process.returncode is not None:
                    raise RuntimeError(f"secantusd-py exited with {self._process.returncode}")
                try:
                    await client.admin.command("ping")
                    return
                except OperationFailure as exc:
                    if exc.code != AUTHENTICATION_FAILED:
                        raise
                    raise RuntimeError(
                        f"the embedded database in {self.storage} refused the password in "
                        f"its {PASSWORD_FILE} file; delete that file to give it a new one"
                    ) from None
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
