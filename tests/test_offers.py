"""The offer catalogue against the real wire server: validation, visibility, overriding."""

import pytest
from bson import ObjectId

from tests.support import buy, make_offer, snapshot, spec
from usercredits.models import OfferDocument
from usercredits.services import Services
from usercredits.services.errors import InvalidInput, NotFound, OfferNotAvailable
from usercredits.services.money import Money
from usercredits.services.offers import price
from usercredits.values import CombinedItem, Cycle, Price


async def names(services: Services, user_id: str | None, **filters: object) -> list[str]:
    offers = await services.offers.load_offers(user_id=user_id, **filters)  # type: ignore[arg-type]
    return [o.name for o in offers]


async def test_create_update_archive_get(services: Services) -> None:
    offer = await make_offer(services, tags=["b", "a", "a"])
    assert offer.tags == ["a", "b"]
    updated = await services.offers.update_offer(
        offer_id=str(offer.id), spec=spec(name="Pro pack 2", weight=5)
    )
    assert updated.name == "Pro pack 2"
    stored = await services.offers.get_offer(offer_id=str(offer.id))
    assert (stored.name, stored.weight) == ("Pro pack 2", 5)
    await services.offers.archive_offer(offer_id=str(offer.id))
    assert await names(services, None) == []
    with pytest.raises(NotFound):
        await services.offers.get_offer(offer_id="not-an-id")


async def test_anonymous_sees_only_offers_needing_no_unlock(services: Services) -> None:
    await make_offer(services, name="public")
    await make_offer(services, name="early bird", unlocked_by=["pro"], offer_group="vip")
    assert await names(services, None) == ["public"]
    assert await names(services, "u1") == ["public"]


async def test_paid_group_unlocks_offers(services: Services) -> None:
    pro = await make_offer(services, name="pro")
    await make_offer(services, name="vip deal", offer_group="vip", unlocked_by=["pro"])
    await buy(services, "u1", pro)
    assert sorted(await names(services, "u1")) == ["pro", "vip deal"]
    assert await names(services, "u2") == ["pro"]


async def test_unlocked_offer_overrides_regular_whatever_the_weights(services: Services) -> None:
    pro = await make_offer(services, name="pro")
    await make_offer(services, name="regular", offer_group="x", overriding_key="k", weight=100)
    await make_offer(
        services,
        name="unlocked",
        offer_group="x",
        overriding_key="k",
        weight=1,
        unlocked_by=["pro"],
    )
    assert await names(services, None, offer_group="x") == ["regular"]
    await buy(services, "u1", pro)
    assert await names(services, "u1", offer_group="x") == ["unlocked"]


async def test_highest_weight_wins_and_ties_go_to_the_oldest(services: Services) -> None:
    await make_offer(services, name="light", overriding_key="k", weight=1)
    await make_offer(services, name="heavy", overriding_key="k", weight=9)
    await make_offer(services, name="tie-first", overriding_key="t", weight=3)
    await make_offer(services, name="tie-second", overriding_key="t", weight=3)
    await make_offer(services, name="free-a", weight=0)
    await make_offer(services, name="free-b", weight=0)
    assert await names(services, None) == ["heavy", "tie-first", "free-a", "free-b"]


async def test_tags_must_all_match_and_unknown_group_is_empty(services: Services) -> None:
    await make_offer(services, name="ab", tags=["a", "b"])
    await make_offer(services, name="a", tags=["a"])
    assert await names(services, None, tags=["a", "b"]) == ["ab"]
    assert sorted(await names(services, None, tags=["a"])) == ["a", "ab"]
    assert await names(services, None, offer_group="nope") == []


async def test_cannot_buy_an_offer_one_cannot_see(services: Services) -> None:
    hidden = await make_offer(services, name="vip", unlocked_by=["pro"])
    overridden = await make_offer(services, name="low", overriding_key="k", weight=0)
    await make_offer(services, name="high", overriding_key="k", weight=5)
    archived = await make_offer(services, name="old")
    await services.offers.archive_offer(offer_id=str(archived.id))
    before = await snapshot()
    for offer in (hidden, overridden, archived):
        with pytest.raises(OfferNotAvailable):
            await services.orders.create_order(user_id="u1", offer_id=str(offer.id))
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prices": []}, "at least one price"),
        ({"prices": [{"currency": "USD", "minorUnits": -1}]}, "USD price is negative"),
        ({"prices": [price("-5", "EUR")]}, "EUR price is negative"),
        ({"token_count": 2.0}, "tokenCount: must be a whole number"),
        ({"token_count": -5}, "tokenCount"),
        ({"cycle": Cycle.CUSTOM}, "customCycleSeconds"),
        ({"combined_items": [CombinedItem(offer_id="0" * 24, quantity=1)]}, "unknown offer"),
        (
            {"prices": [Price(currency="USD", minor_units=m) for m in (100, 200)]},
            "one price per currency",
        ),
        ({"name": "  "}, "name"),
        ({"quantity_limit": 0}, "quantityLimit"),
        ({"offer_group": ""}, "offerGroup"),
    ],
)
async def test_invalid_offers_are_rejected_and_nothing_is_stored(
    services: Services, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await make_offer(services, **overrides)
    assert await OfferDocument.count() == 0


async def test_unknown_currency_in_a_price_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="unknown currency"):
        Money.parse("1", "ABC")


async def test_offers_are_read_as_stored_even_where_todays_rules_are_stricter(
    services: Services,
) -> None:
    """A document written by hand or by an older version (a float count, no prices) is
    still listed: the rules hold for what operators state, not for what was stored."""
    offer = await make_offer(services, name="old")
    await OfferDocument.get_pymongo_collection().update_one(
        {"_id": ObjectId(offer.id)}, {"$set": {"token_count": 100.0, "prices": []}}
    )
    [listed] = await services.offers.load_offers(user_id=None)
    assert (listed.name, listed.token_count, listed.prices) == ("old", 100, [])
