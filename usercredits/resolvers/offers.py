"""Resolvers of the catalogue: reading offers (anyone) and managing them (admins)."""

import strawberry

from usercredits.schema.context import Context
from usercredits.schema.inputs import OfferInput
from usercredits.schema.types import Offer
from usercredits.services.identity.access import ADMINS

Info = strawberry.Info[Context]


async def offers(
    info: Info, tags: list[str] | None = None, offer_group: str | None = None
) -> list[Offer]:
    """Offers the caller can buy now: unlocked and overriding offers applied for a signed-in
    user."""
    found = await info.context.services.offers.load_offers(
        user_id=info.context.principal.user_id, tags=tags, offer_group=offer_group
    )
    return [Offer.of(o) for o in found]


async def offer(info: Info, id: strawberry.ID) -> Offer | None:
    """One offer by id, if the caller can see it (admins see every offer)."""
    ctx = info.context
    if ctx.principal.roles & ADMINS:
        return Offer.of(await ctx.services.offers.get_offer(offer_id=id))
    visible = await ctx.services.offers.visible_offer(user_id=ctx.principal.user_id, offer_id=id)
    return None if visible is None else Offer.of(visible)


async def upsert_offer(info: Info, input: OfferInput) -> Offer:
    """Creates or updates an offer: by its id, else by its key (see OfferInput.key)."""
    info.context.principal.require(ADMINS)
    offer = await info.context.services.offers.upsert_offer(
        spec=input.to_spec(), offer_id=input.id, key=input.key
    )
    return Offer.of(offer)


async def archive_offer(info: Info, id: strawberry.ID) -> Offer:
    info.context.principal.require(ADMINS)
    return Offer.of(await info.context.services.offers.archive_offer(offer_id=id))
