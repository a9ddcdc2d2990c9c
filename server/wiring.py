"""Builds the domain services from their collaborators: the one place they are wired."""

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from services.clock import Clock
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


def build_services(
    *, client: AsyncMongoClient[Any], payments: PaymentClient, clock: Clock, default_currency: str
) -> Services:
    offers = Offers(clock=clock)
    wallets = Wallets(client=client, clock=clock)
    orders = Orders(
        client=client,
        offers=offers,
        wallets=wallets,
        payments=payments,
        clock=clock,
        default_currency=default_currency,
    )
    return Services(offers=offers, orders=orders, wallets=wallets, payments=payments, clock=clock)
