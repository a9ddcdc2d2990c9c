"""The credits service as a Python library: offers, orders, wallets and ledger, expiry,
payments and live events, with no GraphQL and no HTTP.

`build_services` wires them from their collaborators (a MongoDB client, a payment client,
a clock), which the caller builds; the server does so from its settings.
"""

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from services.clock import Clock
from services.events import EventHub
from services.limits import DEFAULT_LIMITS, InputLimits
from services.offers import Offers
from services.orders import Orders
from services.payments import PaymentClient
from services.wallets import Wallets


@dataclass(frozen=True, slots=True)
class Services:
    offers: Offers
    orders: Orders
    wallets: Wallets
    payments: PaymentClient
    clock: Clock
    events: EventHub
    default_currency: str


def build_services(
    *,
    client: AsyncMongoClient[Any],
    payments: PaymentClient,
    clock: Clock,
    default_currency: str,
    limits: InputLimits = DEFAULT_LIMITS,
    max_pending_orders: int = 20,
) -> Services:
    offers = Offers(clock=clock, limits=limits)
    wallets = Wallets(client=client, clock=clock, limits=limits)
    orders = Orders(
        client=client,
        offers=offers,
        wallets=wallets,
        payments=payments,
        clock=clock,
        default_currency=default_currency,
        limits=limits,
        max_pending_orders=max_pending_orders,
    )
    return Services(
        offers=offers,
        orders=orders,
        wallets=wallets,
        payments=payments,
        clock=clock,
        events=EventHub(),
        default_currency=default_currency,
    )
