"""The credits service as a Python library: offers, orders, wallets and ledger, expiry,
payments and live events, with no GraphQL and no HTTP.

`build_services` wires them from their collaborators (the database, a payment client and
a clock, which the caller builds; the server does so from its settings), handing each
service the collections of the database it works on (models/collections.py). The documents must be
registered first (server/database.py's `init_models` makes their indexes and sets up
their encoding), but no service reads Beanie's binding of them to a database.
"""

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from usercredits.models.collections import Collections
from usercredits.services.catalogue.offers import Offers
from usercredits.services.clock import Clock
from usercredits.services.events import EventHub
from usercredits.services.identity.api_keys import ApiKeys
from usercredits.services.limits import DEFAULT_INPUT_LIMITS, InputLimits
from usercredits.services.orders import Orders
from usercredits.services.outbound import Outbound, build_outbound
from usercredits.services.payments import PaymentClient, SandboxPaymentClient
from usercredits.services.payments.customers import PaymentCustomers
from usercredits.services.plans.renewals import Plans
from usercredits.services.sharding import UserScope
from usercredits.services.topups.auto import AutoTopUps, TopUpCaps
from usercredits.services.wallets import Wallets
from usercredits.services.wallets.movements import Movements


@dataclass(frozen=True, slots=True)
class Services:
    offers: Offers
    orders: Orders
    wallets: Wallets
    payments: PaymentClient
    clock: Clock
    events: EventHub
    default_currency: str
    api_keys: ApiKeys
    outbound: Outbound
    customers: PaymentCustomers
    top_ups: AutoTopUps
    plans: Plans


def build_services(
    *,
    database: AsyncDatabase[Any],
    payments: PaymentClient,
    clock: Clock,
    default_currency: str,
    limits: InputLimits = DEFAULT_INPUT_LIMITS,
    max_pending_orders: int = 20,
    api_key_pepper: bytes = b"",
    sharded: bool = False,
    production: bool = False,
    webhook_retry_base_seconds: float = 5.0,
    top_up_caps: TopUpCaps | None = None,
) -> Services:
    """The services, over the collections of `database`; `sharded`: the database is a
    cluster sharded by user_id, whose wallet queries name their users
    (services/sharding.py); `production`: webhooks go only to public https receivers;
    `top_up_caps`: what auto top-ups may charge (default: the built-in caps in
    `default_currency`)."""
    stored = Collections.of(database)
    offers = Offers(offers=stored.offers, orders=stored.orders, clock=clock, limits=limits)
    scope = UserScope(sharded=sharded)
    events = EventHub()
    wallets = Wallets(
        balances=stored.balances,
        ledger=stored.ledger,
        reservations=stored.reservations,
        movements=Movements(
            balances=stored.balances, ledger=stored.ledger, clock=clock, scope=scope
        ),
        clock=clock,
        limits=limits,
        scope=scope,
        events=events,
    )
    orders = Orders(
        orders=stored.orders,
        payment_events=stored.payment_events,
        offers=offers,
        wallets=wallets,
        payments=payments,
        clock=clock,
        default_currency=default_currency,
        limits=limits,
        max_pending_orders=max_pending_orders,
        sandbox=payments if isinstance(payments, SandboxPaymentClient) else None,
    )
    customers = PaymentCustomers(customers=stored.payment_customers, payments=payments, clock=clock)
    return Services(
        offers=offers,
        orders=orders,
        wallets=wallets,
        payments=payments,
        clock=clock,
        events=events,
        default_currency=default_currency,
        api_keys=ApiKeys(keys=stored.api_keys, clock=clock, pepper=api_key_pepper),
        outbound=build_outbound(
            collections=stored,
            clock=clock,
            limits=limits,
            production=production,
            retry_base_seconds=webhook_retry_base_seconds,
        ),
        customers=customers,
        top_ups=AutoTopUps(
            rules=stored.auto_top_ups,
            attempts=stored.top_up_attempts,
            customer_records=stored.payment_customers,
            orders=orders,
            offers=offers,
            wallets=wallets,
            payments=payments,
            customers=customers,
            clock=clock,
            limits=limits,
            caps=top_up_caps or TopUpCaps.of(default_currency),
        ),
        plans=Plans(
            plans=stored.plans,
            offers=offers,
            orders=orders,
            payments=payments,
            customers=customers,
            clock=clock,
            limits=limits,
        ),
    )
