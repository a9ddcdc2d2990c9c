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

One server runs on a folder at a time (WiredTiger locks it), yet the command line's admin
commands want the folder's database while `usercredits serve` runs on it. So the process
that starts the server records in the folder where it listens (ADDRESS_FILE, written once
the server answers, removed when it stops), and a start on a folder whose recorded server
answers to the folder's password connects to that one instead, leaving it running when it
is done. A record left by a killed process names a process that is gone, or a port that
does not answer, and is passed over. A folder locked by a server that recorded nothing (or
that does not answer) is waited for a while, as its owner may be starting it, then refused
with what to do.
"""

import asyncio
import json
import logging
import os
import secrets
import shutil
import socket
import sys
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote_plus

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

from usercredits.server import children
from usercredits.server.certificates import LoopbackTls, loopback_tls

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

URI_OPTIONS = "directConnection=true&retryWrites=false"
USER = "usercredits"
PASSWORD_FILE = "usercredits-password"
"""In the storage folder: the password of USER."""
ADDRESS_FILE = "usercredits-address"
"""In the storage folder while a server runs on it: the JSON `{"pid": ..., "port": ...}` of
that server, for other processes on the folder (module doc)."""
LOCK_FILE = "WiredTiger.lock"
"""The file a running server holds an fcntl lock on."""
JOIN_SECONDS = 15.0
"""How long a start waits, by default, for a server that another process runs on the folder
to answer (it may be starting)."""
ANSWER_MS = 2000
"""How long a recorded server has to answer before it counts as gone."""
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
        raise EmbeddedDatabaseError(
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


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database cannot be started or reached; the message says what to do."""


def _recorded(storage: Path) -> tuple[int, int] | None:
    """The (pid, port) of the server recorded in the folder, if a record is there."""
    try:
        record = json.loads((storage / ADDRESS_FILE).read_text())
        return int(record["pid"]), int(record["port"])
    except (OSError, ValueError, KeyError, TypeError):  # none, or one cut short
        return None


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (always true where that cannot be asked cheaply: there
    the port's answer decides)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _locked(storage: Path) -> bool:
    """Whether a server (of any process) has the folder open: it holds an fcntl lock on
    LOCK_FILE while it runs. Taking that lock here and letting it go at once asks without
    holding anything (Windows has no such lock: a second server there fails to start)."""
    if sys.platform == "win32":
        return False
    try:
        descriptor = os.open(storage / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(descriptor)  # which releases the lock, if it was taken
    return False


class EmbeddedDatabase:
    """`async with EmbeddedDatabase(path) as uri:` runs the server for the block's duration,
    or uses the one another process runs on the folder; `uri` carries the password (see the
    module doc)."""

    def __init__(
        self, storage: Path, *, port: int | None = None, join_seconds: float = JOIN_SECONDS
    ) -> None:
        self.storage = storage
        self.port = port or free_port()
        self.join_seconds = join_seconds
        self.uri = ""
        """Set by `start`."""
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, startup_seconds: float = 30.0) -> str:
        """Connects to the server recorded in the folder if it answers, else starts one
        once the folder is free (module doc)."""
        self.storage.mkdir(mode=OWNER_ONLY, parents=True, exist_ok=True)
        self.storage.chmod(OWNER_ONLY)  # a folder made before, or under another umask
        if await self._running_elsewhere():
            return self.uri
        password = await self._password(startup_seconds)
        self.uri = self._uri(password, self.port)
        self._process = await self._spawn("--auth")
        log.info("embedded database starting", extra={"port": self.port, "path": str(self.storage)})
        try:
            await self._wait_ready(self.uri, startup_seconds)
            self._record(self._process.pid)
        except BaseException:
            await self.stop()  # `async with` does not stop what failed to start
            raise
        return self.uri

    async def _running_elsewhere(self) -> bool:
        """Whether another process runs the folder's server, now joined; false once the
        folder is free. A locked folder's server gets `join_seconds` to answer."""
        deadline = asyncio.get_running_loop().time() + self.join_seconds
        while not await self._join():
            if not _locked(self.storage):
                return False
            if asyncio.get_running_loop().time() > deadline:
                raise EmbeddedDatabaseError(
                    f"the embedded database in {self.storage} is held by another process "
                    "and does not answer: stop that process (a `usercredits serve` on the "
                    "same data folder), or set USERCREDITS_MONGODB_URI"
                )
            await asyncio.sleep(0.2)
        return True

    def _uri(self, password: str, port: int) -> str:
        return (
            f"mongodb://{USER}:{quote_plus(password)}@127.0.0.1:{port}/"
            f"?authSource=admin&{URI_OPTIONS}"
        )

    async def _join(self) -> bool:
        """Takes the server recorded in the folder as this one's, if its process lives and
        it answers to the folder's password; it is not this one's to stop."""
        recorded = _recorded(self.storage)
        kept = self.storage / PASSWORD_FILE
        if recorded is None or not _alive(recorded[0]) or not kept.exists():
            return False
        pid, port = recorded
        uri = self._uri(kept.read_text().strip(), port)
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            uri, serverSelectionTimeoutMS=ANSWER_MS
        )
        try:
            await client.admin.command("ping")
        except PyMongoError:
            return False
        finally:
            await client.close()
        self.port, self.uri = port, uri
        log.info("embedded database already running", extra={"port": port, "pid": pid})
        return True

    def _record(self, pid: int) -> None:
        """Records where the server listens, replacing the record of one that is gone."""
        staged = self.storage / f"{ADDRESS_FILE}.{os.getpid()}"
        staged.unlink(missing_ok=True)
        _write_owner_only(staged, json.dumps({"pid": pid, "port": self.port}))
        staged.replace(self.storage / ADDRESS_FILE)  # whole, for a reader at any moment

    def _forget(self, pid: int) -> None:
        """Removes the record of the server `pid`, unless a later server replaced it."""
        recorded = _recorded(self.storage)
        if recorded is not None and recorded[0] == pid:
            with suppress(FileNotFoundError):
                (self.storage / ADDRESS_FILE).unlink()

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
                    raise EmbeddedDatabaseError(
                        f"the embedded database in {self.storage} exited with "
                        f"{self._process.returncode} while starting (its errors are above)"
                    )
                try:
                    await client.admin.command("ping")
                    return
                except OperationFailure as exc:
                    if exc.code != AUTHENTICATION_FAILED:
                        raise
                    raise EmbeddedDatabaseError(
                        f"the embedded database in {self.storage} refused the password in "
                        f"its {PASSWORD_FILE} file; delete that file to give it a new one"
                    ) from None
                except PyMongoError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise EmbeddedDatabaseError(
                            f"the embedded database did not start on port "
                            f"{self.port} within {startup_seconds}s"
                        ) from None
                    await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def stop(self) -> None:
        """Stops the server this one started (none if it joined another's), first removing
        its record so that no one joins a server that is stopping."""
        if self._process is not None:
            self._forget(self._process.pid)
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
