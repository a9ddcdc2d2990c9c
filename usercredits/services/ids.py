"""Parsing of the opaque ids clients send: a malformed id is simply an unknown one."""

from bson import ObjectId
from bson.errors import InvalidId

from usercredits.services.errors import NotFound, shown


def object_id(value: str, what: str) -> ObjectId:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise NotFound(f"{what} {shown(value)} does not exist") from None
