"""API keys for back ends: created with a role, shown once, stored as a keyed hash,
revoked on every instance within a second. No HTTP here: the server reads the key from
`Authorization: Bearer ucsk_...` and asks `authenticate`.

A key is 32 random bytes, so a fast keyed hash (BLAKE2b under the deployment's pepper) is
enough to store it: nobody can guess its way back to a secret of that entropy, and a
stolen database without the pepper does not even allow checking one. A request's key is
found by that hash through a unique index. Each instance remembers what it found for
CACHE_SECONDS, so a busy back end costs no lookup per request, and a revocation reaches
every instance within that time.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from usercredits.models import ApiKey
from usercredits.models.collections import Collection, insert
from usercredits.services.clock import Clock
from usercredits.services.errors import InvalidInput, NotFound
from usercredits.services.identity.access import STAFF, Role
from usercredits.services.ids import object_id

SECRET_PREFIX = "ucsk_"
SHOWN_CHARACTERS = 12
"""How much of a secret `prefix` shows: the marker and 7 random characters."""
MAX_NAME = 100
CACHE_SECONDS = 0.5
LAST_USED_EVERY = timedelta(minutes=1)
"""`last_used_at` is written at most this often per key, not at every request."""


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> "ApiKeyView":
        return cls(
            id=str(key.id),
            name=key.name,
            role=Role(key.role),
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    key: ApiKeyView
    secret: str
    """Shown once: only its hash is kept."""


def is_api_key(credential: str) -> bool:
    return credential.startswith(SECRET_PREFIX)


class ApiKeys:
    def __init__(self, *, keys: Collection, clock: Clock, pepper: bytes = b"") -> None:
        self._keys = keys
        self._clock = clock
        self._pepper = pepper
        self._found: dict[str, tuple[float, ApiKeyView | None]] = {}

    def _digest(self, secret: str) -> str:
        return hashlib.blake2b(secret.encode(), key=self._pepper, digest_size=32).hexdigest()

    async def create(self, *, name: str, role: Role) -> CreatedApiKey:
        if role not in STAFF:
            raise InvalidInput("an API key's role is SERVICE or ADMIN; users sign in with tokens")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise InvalidInput(f"an API key's name has 1 to {MAX_NAME} characters")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            name=name.strip(),
            role=role.value,
            prefix=secret[:SHOWN_CHARACTERS],
            digest=self._digest(secret),
            created_at=self._clock.now(),
        )
        await insert(self._keys, key)
        return CreatedApiKey(key=ApiKeyView.of(key), secret=secret)

    async def list_keys(self) -> list[ApiKeyView]:
        """Every key, revoked ones too, newest first."""
        found = self._keys.find({}).sort("_id", -1)
        return [ApiKeyView.of(ApiKey.model_validate(raw)) async for raw in found]

    async def revoke(self, *, key_id: str) -> ApiKeyView:
        """Revokes a key (a second revocation changes nothing): this instance stops
        accepting it at once, the others within CACHE_SECONDS."""
        oid = object_id(key_id, "API key")
        await self._keys.update_one(
            {"_id": oid, "revoked_at": None}, {"$set": {"revoked_at": self._clock.now()}}
        )
        raw = await self._keys.find_one({"_id": oid})
        if raw is None:
            raise NotFound(f"API key {key_id} does not exist")
        key = ApiKey.model_validate(raw)
        self._found.pop(key.digest, None)
        return ApiKeyView.of(key)

    async def authenticate(self, secret: str) -> ApiKeyView | None:
        """The live key whose secret this is; None for an unknown or revoked one."""
        digest = self._digest(secret)
        now = time.monotonic()
        cached = self._found.get(digest)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        raw = await self._keys.find_one({"digest": digest})
        key = None if raw is None else ApiKey.model_validate(raw)
        view = None if key is None or key.revoked_at is not None else ApiKeyView.of(key)
        if key is not None and view is not None:
            await self._note_use(key)
        if len(self._found) > 10_000:  # a flood of made-up keys must not grow it forever
            self._found.clear()
        self._found[digest] = (now, view)
        return view

    async def _note_use(self, key: ApiKey) -> None:
        at = self._clock.now()
        if key.last_used_at is None or at - key.last_used_at >= LAST_USED_EVERY:
            await self._keys.update_one({"_id": key.id}, {"$set": {"last_used_at": at}})
