"""Each user's customer at the payment provider, made on first need and kept: saved cards,
off-session charges and plans all belong to it."""

from pymongo.errors import DuplicateKeyError

from usercredits.models.collections import Collection
from usercredits.services.clock import Clock
from usercredits.services.payments import CardsOnFile


class PaymentCustomers:
    def __init__(self, *, customers: Collection, payments: CardsOnFile, clock: Clock) -> None:
        self._customers = customers
        self._payments = payments
        self._clock = clock

    async def customer(self, *, user_id: str) -> str:
        """The user's customer at the provider, made on first need."""
        customers = self._customers
        known = await customers.find_one({"_id": user_id})
        if known is not None:
            return str(known["customer_id"])
        made = await self._payments.create_customer(user_id=user_id)
        try:
            await customers.insert_one(
                {
                    "_id": user_id,
                    "provider": self._payments.name,
                    "customer_id": made,
                    "created_at": self._clock.now(),
                }
            )
        except DuplicateKeyError:  # made by a concurrent request (the same, by its key)
            raced = await customers.find_one({"_id": user_id})
            return made if raced is None else str(raced["customer_id"])
        return made
