"""Outbound webhooks: events for the customer's back end, derived from the ledger and the
orders, signed as the Standard Webhooks specification says and delivered at least once.

- `endpoints`: the receivers admins register, and the addresses they may point at;
- `alerts`: the balance alert rules per offer group and the state machine they drive;
- `derive`: which events a ledger entry or an order write makes (pure);
- `deliveries`: one delivery per event and endpoint, claimed, retried and inspected;
- `signing`: the signature and the retry schedule;
- `publisher`: what the relay calls to turn changes into deliveries.

The server runs the two loops that move them: server/relay.py turns the change stream
into deliveries, server/dispatcher.py sends them.
"""

from dataclasses import dataclass

from usercredits.models.collections import Collections
from usercredits.services.clock import Clock
from usercredits.services.limits import InputLimits
from usercredits.services.outbound.alerts import AlertRules
from usercredits.services.outbound.deliveries import Deliveries
from usercredits.services.outbound.endpoints import WebhookEndpoints
from usercredits.services.outbound.publisher import Publisher


@dataclass(frozen=True, slots=True)
class Outbound:
    endpoints: WebhookEndpoints
    alerts: AlertRules
    deliveries: Deliveries
    publisher: Publisher


def build_outbound(
    *,
    collections: Collections,
    clock: Clock,
    limits: InputLimits,
    production: bool,
    retry_base_seconds: float,
) -> Outbound:
    """`production`: receivers must be https and public; `retry_base_seconds`: about how
    long after a failed delivery the first retry comes."""
    endpoints = WebhookEndpoints(
        endpoints=collections.webhook_endpoints,
        positions=collections.stream_positions,
        clock=clock,
        production=production,
    )
    alerts = AlertRules(rules=collections.alert_rules, clock=clock, limits=limits)
    deliveries = Deliveries(
        deliveries=collections.webhook_deliveries,
        clock=clock,
        retry_base_seconds=retry_base_seconds,
    )
    publisher = Publisher(
        states=collections.alert_states,
        balances=collections.balances,
        endpoints=endpoints,
        alerts=alerts,
        deliveries=deliveries,
    )
    return Outbound(endpoints, alerts, deliveries, publisher)
