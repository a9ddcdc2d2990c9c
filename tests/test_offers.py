"""The offer catalogue against the real wire server: validation, visibility, overriding,
upserts by key."""

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from tests.api import Api
from tests.shop import ADMIN, ALICE, PRO, upsert_offer
from tests.support import buy, make_offer, snapshot, spec
from usercredits.models import OfferDocument
from usercredits.services import Services
from usercredits.services.catalogue.offers import price
from usercredits.services.errors import InvalidInput, NotFound, OfferNotAvailable
from usercredits.services.money import Money
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


BUY = "mutation B($id: ID!) { createOrder(input: {offerId: $id}) { order { id } } }"
PAY = "mutation P($id: ID!) { completeSandboxPayment(orderId: $id) { status } }"
TOP_UP = """mutation T($id: ID!) { setAutoTopUp(input: {offerGroup: "chat", offerId: $id,
  threshold: 10}) { threshold } }"""
SUBSCRIBE = "mutation S($id: ID!) { subscribe(input: {offerId: $id}) { plan { id } } }"
OFFERS = "query { offers { id name key } }"


async def refusal(api: Api, query: str, offer_id: str) -> dict[str, Any]:
    """The one error of `query` on `offer_id` as alice."""
    body = await api.call(query, {"id": offer_id}, as_=ALICE)
    [error] = body["errors"]
    return dict(error)


async def test_an_overridden_offer_names_the_offer_that_replaces_it(api: Api) -> None:
    """After alice pays for 'pro', the Pro price replaces the public pack for her: buying,
    subscribing to or setting a top-up with the public pack names the Pro price."""
    pro = await upsert_offer(api)
    common = {"offerGroup": "chat", "tokenCount": 500, "overridingKey": "chat-pack"}
    public = await upsert_offer(api, name="500 chat tokens", weight=1, **common)
    early = await upsert_offer(api, name="Pro price", unlockedBy=["pro"], **common)
    plan = await upsert_offer(api, name="Chat plan", kind="SUBSCRIPTION", **common)
    order = (await api.data(BUY, {"id": pro}, as_=ALICE))["createOrder"]["order"]["id"]
    await api.data(PAY, {"id": order}, as_=ALICE)
    listed = {o["id"] for o in (await api.data(OFFERS, as_=ALICE))["offers"]}
    assert public not in listed and early in listed

    for query in (BUY, TOP_UP):
        error = await refusal(api, query, public)
        assert error["extensions"]["code"] == "OFFER_NOT_AVAILABLE"
        assert error["extensions"]["replacedBy"] == early
        assert f"offer {early} ('Pro price') replaces it" in error["message"]
    # The plan of the same key loses to the unlocked offer too, whatever its kind.
    error = await refusal(api, SUBSCRIBE, plan)
    assert error["extensions"]["replacedBy"] == early
    wallet = await api.data(
        "query { wallet { autoTopUps { offerGroup } plans { id } } }", as_=ALICE
    )
    assert wallet["wallet"] == {"autoTopUps": [], "plans": []}


async def test_an_offer_refused_for_another_cause_names_no_replacement(api: Api) -> None:
    """Locked and archived offers are not replaced, even where an offer of their key shows."""
    common = {"offerGroup": "chat", "overridingKey": "k"}
    await upsert_offer(api, name="shown", **common)
    locked = await upsert_offer(api, name="locked", unlockedBy=["vip"], **common)
    archived = await upsert_offer(api, name="archived", weight=9, **common)
    await api.data(
        "mutation A($id: ID!) { archiveOffer(id: $id) { id } }", {"id": archived}, as_=ADMIN
    )
    for offer_id in (locked, archived):
        error = await refusal(api, BUY, offer_id)
        assert error["extensions"]["code"] == "OFFER_NOT_AVAILABLE"
        assert "replacedBy" not in error["extensions"]
        assert error["message"] == f"offer {offer_id} is not available to user alice"


UPSERT = """mutation U($input: OfferInput!) { upsertOffer(input: $input) { id name key
  tokenCount } }"""


async def upsert(api: Api, **fields: Any) -> dict[str, Any]:
    """The offer an admin's upsertOffer of PRO, changed by `fields`, answers."""
    stated = {**PRO, **fields}
    offer: dict[str, Any] = (await api.data(UPSERT, {"input": stated}, as_=ADMIN))["upsertOffer"]
    return offer


async def test_an_upsert_by_key_updates_the_offer_with_that_key(api: Api) -> None:
    first = await upsert(api, key="pro")
    again = await upsert(api, key="pro", tokenCount=200, name="Pro+")
    assert again == {"id": first["id"], "name": "Pro+", "key": "pro", "tokenCount": 200}
    other = await upsert(api, key="pro-yearly")
    unkeyed = await upsert(api)
    assert len({first["id"], other["id"], unkeyed["id"]}) == 3
    offers = (await api.data(OFFERS))["offers"]
    assert sorted((o["name"], o["key"] or "") for o in offers) == [
        ("Pro", ""),
        ("Pro", "pro-yearly"),
        ("Pro+", "pro"),
    ]


async def test_an_update_by_id_takes_the_key_or_keeps_its_own(api: Api) -> None:
    offer = await upsert(api)
    keyed = await upsert(api, id=offer["id"], key="pro")
    assert (keyed["id"], keyed["key"]) == (offer["id"], "pro")
    kept = await upsert(api, id=offer["id"], name="Pro 2")
    assert (kept["name"], kept["key"]) == ("Pro 2", "pro")
    assert (await upsert(api, key="pro", name="Pro 3"))["id"] == offer["id"]


async def test_a_key_names_one_offer_and_a_bad_key_changes_nothing(api: Api) -> None:
    holder = await upsert(api, key="pro")
    other = await upsert(api, name="Other")
    before = await snapshot()
    body = await api.call(UPSERT, {"input": {**PRO, "id": other["id"], "key": "pro"}}, as_=ADMIN)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["message"] == f"key 'pro' already names offer {holder['id']}"
    for bad in ("", "  ", "k" * 201):
        code = await api.error_code(UPSERT, {"input": {**PRO, "key": bad}}, as_=ADMIN)
        assert code == "BAD_USER_INPUT"
    assert await snapshot() == before


async def test_concurrent_upserts_of_one_new_key_make_one_offer(api: Api) -> None:
    made = await asyncio.gather(*(upsert(api, key="burst", tokenCount=n) for n in range(1, 9)))
    assert len({offer["id"] for offer in made}) == 1
    [stored] = await OfferDocument.find({"key": "burst"}).to_list()
    assert stored.token_count in range(1, 9)
    assert await OfferDocument.count() == 1
