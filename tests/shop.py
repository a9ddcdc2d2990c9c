"""A shop on Stripe for the tests: the app configured for Stripe, its fake Stripe server, and
helpers to buy offers and deliver signed webhooks over HTTP."""

from typing import Any

import aiohttp

from tests.api import Api, token
from tests.fake_stripe import FakeStripe, sign
from usercredits.services.identity.access import Role

ADMIN = token("admin-1", Role.ADMIN)
ALICE = token("alice")

BUY = """mutation Buy($input: CreateOrderInput!) { createOrder(input: $input) {
  paymentClientSecret order { id status total { amount currency minorUnits } } } }"""
ORDER = "query O($id: ID!) { order(id: $id) { status history { status message } } }"
WALLET = 'query { wallet { balance(offerGroup: "pro") { tokens } } }'


PRO = {
    "name": "Pro",
    "kind": "TOKENS",
    "offerGroup": "pro",
    "tokenCount": 100,
    "prices": [{"amount": "9.99", "currency": "USD"}],
    "cycle": "MONTHLY",
}
"""An OfferInput: 100 'pro' tokens for 9.99 USD a month."""


async def upsert_offer(api: Api, **fields: Any) -> str:
    """An offer upserted by an admin: PRO changed by `fields` (OfferInput's names)."""
    stated = {**PRO, **fields}
    upsert = "mutation U($input: OfferInput!) { upsertOffer(input: $input) { id } }"
    offer_id: str = (await api.data(upsert, {"input": stated}, as_=ADMIN))["upsertOffer"]["id"]
    return offer_id


class Shop:
    """The app on Stripe, its fake Stripe, and helpers to buy and deliver webhooks."""

    def __init__(self, api: Api, http: aiohttp.ClientSession, base: str, fake: FakeStripe):
        self.api, self.http, self.base, self.fake = api, http, base, fake

    async def offer(self, **prices: str) -> str:
        money = [{"amount": a, "currency": c} for c, a in (prices or {"USD": "9.99"}).items()]
        return await upsert_offer(self.api, prices=money)

    async def buy(self, offer_id: str, **extra: Any) -> dict[str, Any]:
        data = await self.api.data(BUY, {"input": {"offerId": offer_id, **extra}}, as_=ALICE)
        created: dict[str, Any] = data["createOrder"]
        return created

    async def deliver(self, body: bytes, signature: str | None = None) -> tuple[int, Any]:
        headers = {
            "Stripe-Signature": signature if signature is not None else sign(body),
            "Content-Type": "application/json",
        }
        async with self.http.post(
            f"{self.base}/webhooks/stripe", data=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def metrics(self) -> str:
        async with self.http.get(f"{self.base}/metrics") as response:
            return await response.text()

    async def status(self, order_id: str) -> str:
        status: str = (await self.api.data(ORDER, {"id": order_id}, as_=ALICE))["order"]["status"]
        return status

    async def tokens(self) -> int | None:
        balance = (await self.api.data(WALLET, as_=ALICE))["wallet"]["balance"]
        return None if balance is None else int(balance["tokens"])
