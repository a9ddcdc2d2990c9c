"""The aiohttp application: /graphql (HTTP and graphql-transport-ws, server/view.py),
/webhooks/stripe, /healthz, /readyz and /metrics (server/endpoints.py), GraphiQL and the
demo page, on what the typed keys of server/keys.py hold.

The factory only wires: each resource (the payment provider's client, the database and
services, the authenticator, revocation checks, the change feed, the sweeper, the webhook
relay) has one cleanup context that opens it before `yield` and closes it after, in reverse
order, and lives under a typed AppKey; rate limiting is the caller middleware
(server/callers.py). On shutdown (SIGTERM) the server stops accepting, closes open
websockets with the going-away code, finishes in-flight requests, then closes the
resources, the database (and an embedded one with it) and then the provider's client last.
"""

import asyncio
import logging
import os
import socket
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import timedelta
from typing import Any

from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from usercredits.server.auth import Authenticator
from usercredits.server.callers import GRAPHQL_PATH, graphql_callers
from usercredits.server.changes import ChangeFeed, running_feed
from usercredits.server.concurrency import InFlight, OpenSockets
from usercredits.server.database import is_sharded, open_database
from usercredits.server.deadlines import body_deadline
from usercredits.server.demo import add_demo_routes
from usercredits.server.dispatcher import Dispatcher
from usercredits.server.endpoints import close_websockets, healthz, metrics, payment_webhook, readyz
from usercredits.server.graphiql import add_graphiql_routes
from usercredits.server.keys import (
    AUTHENTICATOR,
    CLIENT,
    CLOSING,
    IN_FLIGHT,
    KEY_SOCKETS,
    METRICS,
    OPEN_SOCKETS,
    RATE_LIMITS,
    SERVICES,
    SETTINGS,
    SOCKETS,
)
from usercredits.server.logs import request_ids
from usercredits.server.metrics import Metrics
from usercredits.server.ratelimit import TokenBuckets
from usercredits.server.relay import EventRelay
from usercredits.server.revocation import KeySockets
from usercredits.server.settings import Settings
from usercredits.server.sweeper import Lease, Sweeper
from usercredits.server.topups import TopUpTrigger
from usercredits.server.view import CreditsGraphQLView
from usercredits.services import Services, build_services
from usercredits.services.catalogue.files import import_catalogue
from usercredits.services.clock import Clock, SystemClock
from usercredits.services.limits import InputLimits
from usercredits.services.payments import PaymentClient, SandboxPaymentClient
from usercredits.services.payments.stripe import StripePaymentClient

log = logging.getLogger(__name__)


STOP_SECONDS = 5.0
"""How long a stopping server waits for its background tasks once cancelled."""

SEED_ATTEMPTS = 5


async def seed_catalogue(services: Services, text: str) -> None:
    """Loads a catalogue into an empty catalogue, so that a first start shows offers.

    Workers starting together may all find it empty: an offer another one created first
    makes the import stop on its key, and the import (idempotent) runs again."""
    if await services.offers.any_offer():
        return
    for attempt in range(1, SEED_ATTEMPTS + 1):
        try:
            changes = await import_catalogue(offers=services.offers, text=text)
        except DuplicateKeyError:
            if attempt == SEED_ATTEMPTS:
                raise
            continue
        log.info("catalogue seeded", extra={"offers": len(changes)})
        return


def payment_client(settings: Settings, clock: Clock) -> PaymentClient:
    """The provider the settings choose: Stripe, or the sandbox (which renews plans by
    `clock`)."""
    if settings.provider == "sandbox" or settings.stripe_secret_key is None:
        return SandboxPaymentClient(clock)
    return StripePaymentClient(
        secret_key=settings.stripe_secret_key,
        webhook_secret=settings.stripe_webhook_secret or "",
        api_base=settings.stripe_api_base,
    )


async def services_for(
    settings: Settings, client: AsyncMongoClient[Any], payments: PaymentClient, clock: Clock
) -> Services:
    """The services as `settings` configure them, over `client`: the server and every
    command line tool build them here, so both apply the same limits."""
    return build_services(
        database=client[settings.database],
        payments=payments,
        clock=clock,
        default_currency=settings.default_currency,
        limits=InputLimits(
            max_key_length=settings.max_key_length,
            max_group_length=settings.max_group_length,
            max_note_length=settings.max_note_length,
        ),
        max_pending_orders=settings.max_pending_orders,
        api_key_pepper=(settings.api_key_pepper or "").encode(),
        sharded=await is_sharded(client),
        production=settings.production,
        webhook_retry_base_seconds=settings.webhook_retry_base_seconds,
        top_up_caps=settings.top_up_caps,
    )


def holder_name() -> str:
    """Who holds a lease: this host and process, and a random part for a restarted one."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def create_app(
    settings: Settings, *, payments: PaymentClient | None = None, clock: Clock | None = None
) -> web.Application:
    """The service on `settings`; tests may pass their own payment client and clock."""
    app = web.Application(
        client_max_size=256 * 1024,
        middlewares=[request_ids, body_deadline(settings.request_body_seconds), graphql_callers],
    )
    app[SETTINGS] = settings
    app[CLOSING] = set()
    app[METRICS] = Metrics()
    app[RATE_LIMITS] = TokenBuckets(
        rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
    )
    app[SOCKETS] = weakref.WeakSet()
    refusals = app[METRICS].refusals
    app[IN_FLIGHT] = InFlight(
        most=settings.max_operations_in_flight,
        budget=settings.max_query_cost,
        refused=refusals.labels(cause="in_flight").inc,
    )
    app[OPEN_SOCKETS] = OpenSockets(
        per_user=settings.max_sockets_per_user,
        per_address=settings.max_sockets_per_address,
        refused=refusals.labels(cause="sockets").inc,
    )
    app[KEY_SOCKETS] = KeySockets(lambda header: app[AUTHENTICATOR].principal(header))
    clock = clock or SystemClock()
    provider = payments or payment_client(settings, clock)
    seed = settings.seed_catalogue.read_text() if settings.seed_catalogue else None

    async def payment_provider(app: web.Application) -> AsyncIterator[None]:
        """The provider's HTTP client, closed once nothing else runs."""
        yield
        await provider.close()

    async def database(app: web.Application) -> AsyncIterator[None]:
        async with open_database(settings) as client:
            app[CLIENT] = client
            app[SERVICES] = await services_for(settings, client, provider, clock)
            if seed is not None:
                await seed_catalogue(app[SERVICES], seed)
            yield

    async def authenticator(app: web.Application) -> AsyncIterator[None]:
        """Checks credentials; keeps an HTTP client to the identity provider, if any."""
        app[AUTHENTICATOR] = Authenticator(
            rules=settings.token_rules,
            oidc=settings.oidc_rules,
            api_keys=app[SERVICES].api_keys,
            clock=clock,
        )
        yield
        await app[AUTHENTICATOR].close()

    async def revocations(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[KEY_SOCKETS].run(), name="revocations")
        yield
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def change_feed(app: web.Application) -> AsyncIterator[None]:
        events = app[SERVICES].events
        app[METRICS].count_subscriptions(lambda: events.subscriber_count)
        trigger = TopUpTrigger(top_ups=app[SERVICES].top_ups)
        app[METRICS].count_top_up_backlog(lambda: trigger.backlog)
        feed = ChangeFeed(
            database=app[CLIENT][settings.database],
            events=events,
            metrics=app[METRICS],
            top_ups=trigger,
        )
        judging = asyncio.create_task(trigger.run(), name="auto-top-up")
        deafen = events.on_shortfall(trigger.ran_short)
        try:
            async with running_feed(feed):
                yield
        finally:
            deafen()
            judging.cancel()
            await asyncio.wait([judging], timeout=STOP_SECONDS)

    async def sweeper(app: web.Application) -> AsyncIterator[None]:
        if not settings.sweep_interval_seconds:
            yield
            return
        interval = timedelta(seconds=settings.sweep_interval_seconds)
        services = app[SERVICES]
        lease = Lease(
            collection=app[CLIENT][settings.database]["leases"],
            name="expiry-sweep",
            holder=holder_name(),
            ttl=interval * 3 + timedelta(seconds=30),
            clock=services.clock,
        )
        runner = Sweeper(
            services=services,
            lease=lease,
            reconcile_after=timedelta(seconds=settings.pending_reconcile_seconds),
            metrics=app[METRICS],
        )
        task = asyncio.create_task(runner.run(interval), name="sweeper")
        yield
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def webhooks(app: web.Application) -> AsyncIterator[None]:
        outbound = app[SERVICES].outbound
        relay = EventRelay(
            database=app[CLIENT][settings.database],
            publisher=outbound.publisher,
            lease=Lease(
                collection=app[CLIENT][settings.database]["leases"],
                name="webhook-relay",
                holder=holder_name(),
                ttl=timedelta(seconds=settings.webhook_relay_seconds * 5 + 5),
                clock=app[SERVICES].clock,
            ),
            clock=app[SERVICES].clock,
            check_every=timedelta(seconds=settings.webhook_relay_seconds),
            scan_every=timedelta(seconds=settings.webhook_expiring_scan_seconds),
        )
        dispatcher = Dispatcher(
            deliveries=outbound.deliveries,
            endpoints=outbound.endpoints,
            metrics=app[METRICS],
            production=settings.production,
            timeout=settings.webhook_timeout_seconds,
            concurrency=settings.webhook_concurrency,
            poll_seconds=settings.webhook_poll_seconds,
        )
        tasks = [
            asyncio.create_task(relay.run(), name="webhook-relay-check"),
            asyncio.create_task(dispatcher.run(), name="webhook-dispatcher"),
        ]
        yield
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=STOP_SECONDS)
        if stuck:
            log.error("webhook tasks did not stop", extra={"tasks": [t.get_name() for t in stuck]})

    app.cleanup_ctx.extend(
        [payment_provider, database, authenticator, revocations, change_feed, sweeper, webhooks]
    )
    app.on_shutdown.append(close_websockets)
    view = CreditsGraphQLView(
        app=app, settings=settings, sandbox=isinstance(provider, SandboxPaymentClient)
    )
    app.router.add_route("*", GRAPHQL_PATH, view)
    if view.graphql_ide:
        add_graphiql_routes(app)
    if isinstance(provider, StripePaymentClient):
        app.router.add_post("/webhooks/stripe", payment_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    # Settings refuse the demo without HS256 rules: it signs its users in with them.
    if settings.demo and settings.token_rules is not None:
        stripe_key = settings.stripe_publishable_key if settings.provider == "stripe" else None
        add_demo_routes(app, settings.token_rules, stripe_key)
    return app
