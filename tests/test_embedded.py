"""The embedded database is its owner's alone: its folder and files are the owner's only,
it answers only the password kept there (another process on the machine that reaches its
port gets nothing), it starts again on that password, and production refuses it unless a
setting says otherwise."""

import asyncio
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from tests.api import SECRET
from tests.support import run_cli
from tests.test_workers import ready
from tests.waits import until
from usercredits.server import children
from usercredits.server.embedded import PASSWORD_FILE, EmbeddedDatabase, free_port

UNAUTHORIZED = 13
AUTHENTICATION_FAILED = 18


def modes(folder: Path) -> dict[str, int]:
    """The permission bits of the folder and of everything in it."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.stat().st_mode)
    return found


async def refusal(uri: str) -> int:
    """The error code the database answers a read through `uri` with."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=2000)
    try:
        with pytest.raises(OperationFailure) as refused:
            await client["usercredits"]["ledger"].find_one()
        return refused.value.code or 0
    finally:
        await client.close()


async def test_the_embedded_database_is_the_owners_alone(tmp_path: Path) -> None:
    storage = tmp_path / "db"
    storage.mkdir(mode=0o755)  # a folder made before, open to all
    database = EmbeddedDatabase(storage)
    uri = await database.start()
    try:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        await client["usercredits"]["ledger"].insert_one({"tokens": 5})
        await client.close()
        found = modes(storage)
        assert found["."] == 0o700
        assert found[PASSWORD_FILE] == 0o600
        assert {name: mode for name, mode in found.items() if mode & 0o077} == {}
        plain = f"127.0.0.1:{database.port}/?directConnection=true"
        assert await refusal(f"mongodb://{plain}") == UNAUTHORIZED
        assert await refusal(f"mongodb://usercredits:guessed@{plain}") == AUTHENTICATION_FAILED
        await database.stop()
        assert await database.start() == uri  # the same password, kept in the folder
        client = AsyncMongoClient(uri)
        assert await client["usercredits"]["ledger"].count_documents({"tokens": 5}) == 1
        await client.close()
    finally:
        await database.stop()


async def test_production_refuses_the_embedded_database_unless_allowed(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("USERCREDITS_")},
        "USERCREDITS_PRODUCTION": "true",
        "USERCREDITS_DATA_DIR": str(tmp_path),
        "USERCREDITS_JWT_SECRET": SECRET,
        "USERCREDITS_STRIPE_SECRET_KEY": "sk_test_unused",
        "USERCREDITS_STRIPE_WEBHOOK_SECRET": "whsec_unused",
        "USERCREDITS_WORKERS": "1",
    }
    code, _, stderr = await run_cli("serve", "--port", "0", env=env, seconds=30)
    assert code == 2
    assert "USERCREDITS_PRODUCTION is on but USERCREDITS_MONGODB_URI is not set" in stderr
    assert not (tmp_path / "db").exists()

    port = free_port()
    allowed = {**env, "USERCREDITS_ALLOW_EMBEDDED_IN_PRODUCTION": "true"}
    server = await children.spawn(
        sys.executable,
        *("-m", "usercredits.server.cli", "serve", "--port", str(port)),
        env=allowed,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await until(
            lambda: ready(url),
            seconds=60,
            every=0.1,
            what="production on the embedded database, allowed",
        )
    finally:
        await children.stop(server)
    assert (tmp_path / "db" / PASSWORD_FILE).exists()
