"""The credits service as a Python library: offers, orders, wallets and ledger, expiry,
payments and live events, with no GraphQL and no HTTP.

`build_services` wires them from their collaborators (a payment client and a clock, which
the caller builds; the server does so from its settings). The documents must be bound to a
database first (server/database.py's `init_models`).
"""

from dataclasses import dataclass

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
    """The services; `sharded`: the database is a cluster sharded by user_id, whose wallet
    queries name their users (services/sharding.py); `production`: webhooks go only to
    public https receivers; `top_up_caps`: what auto top-ups may charge (default: the
    built-in caps in `default_currency`)."""
    offers = Offers(clock=clock, limits=limits)
    scope = UserScope(sharded=sharded)
    events = EventHub()
    wallets = Wallets(
        movements=Movements(clock=clock, scope=scope),
        clock=clock,
        limits=limits,
        scope=scope,
        events=events,
    )
    orders = Orders(
        offers=offers,
        wallets=wallets,
        payments=payments,
        clock=clock,
        default_currency=default_currency,
        limits=limits,
        max_pending_orders=max_pending_orders,
        sandbox=payments if isinstance(payments, SandboxPaymentClient) else None,
    )
    customers = PaymentCustomers(payments=payments, clock=clock)
    return Services(
        offers=offers,
        orders=orders,
        wallets=wallets,
        payments=payments,
        clock=clock,
        events=events,
        default_currency=default_currency,
        api_keys=ApiKeys(clock=clock, pepper=api_key_pepper),
        outbound=build_outbound(
            clock=clock,
            limits=limits,
            production=production,
            retry_base_seconds=webhook_retry_base_seconds,
        ),
        customers=customers,
        top_ups=AutoTopUps(
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
            offers=offers,
            orders=orders,
            payments=payments,
            customers=customers,
            clock=clock,
            limits=limits,
        ),
    )
