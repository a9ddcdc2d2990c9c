"""API keys of back ends: only a keyed hash of each secret is stored."""

from datetime import datetime

import pymongo
from beanie import Document
from pymongo import IndexModel


class ApiKey(Document):
    name: str
    role: str
    """service or admin (services/identity/access.py's Role)."""
    prefix: str
    """The secret's first characters, shown to recognise a key; not enough to use it."""
    digest: str
    """The keyed hash of the secret (services/identity/api_keys.py): a request's key is
    found by it."""
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    class Settings:
        name = "api_keys"
        indexes = [IndexModel([("digest", pymongo.ASCENDING)], name="digest", unique=True)]
