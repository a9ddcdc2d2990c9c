"""Resolvers of API keys (admins only)."""

import strawberry

from usercredits.schema.context import Context
from usercredits.schema.types import ApiKey, CreatedApiKey
from usercredits.services.identity.access import ADMINS, Role

Info = strawberry.Info[Context]


async def api_keys(info: Info) -> list[ApiKey]:
    info.context.principal.require(ADMINS)
    return [ApiKey.of(k) for k in await info.context.services.api_keys.list_keys()]


async def create_api_key(info: Info, name: str, role: Role) -> CreatedApiKey:
    """A key for a back end; its secret is in this answer only."""
    info.context.principal.require(ADMINS)
    return CreatedApiKey.of(await info.context.services.api_keys.create(name=name, role=role))


async def revoke_api_key(info: Info, id: strawberry.ID) -> ApiKey:
    """Refused on every instance within a second."""
    info.context.principal.require(ADMINS)
    return ApiKey.of(await info.context.services.api_keys.revoke(key_id=str(id)))
