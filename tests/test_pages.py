"""Pages of the ledger and of orders share one rule for their size and their cursor."""

import pytest
from bson import ObjectId

from usercredits.services import Services
from usercredits.services.errors import InvalidInput
from usercredits.services.pages import after_cursor, page_size


def test_a_page_size_is_a_whole_number_within_bounds() -> None:
    assert page_size(1, 10) == 1 and page_size(10, 10) == 10
    for bad in (0, 11, -1, True, 2.5, "3", None):
        with pytest.raises(InvalidInput, match="first must be between 1 and 10"):
            page_size(bad, 10)


def test_a_cursor_is_an_id_this_api_returned() -> None:
    last = ObjectId()
    assert after_cursor(None) == {}
    assert after_cursor(str(last)) == {"_id": {"$lt": last}}
    with pytest.raises(InvalidInput, match="is not one this API returned"):
        after_cursor("not-a-cursor")


async def test_the_ledger_and_orders_refuse_a_bad_cursor_alike(services: Services) -> None:
    with pytest.raises(InvalidInput, match="cursor 'x' is not one"):
        await services.wallets.ledger(user_id="u1", after="x")
    with pytest.raises(InvalidInput, match="cursor 'x' is not one"):
        await services.orders.list_orders(user_id="u1", after="x")
    with pytest.raises(InvalidInput, match="first must be between 1 and 200"):
        await services.orders.list_orders(user_id="u1", first=201)
