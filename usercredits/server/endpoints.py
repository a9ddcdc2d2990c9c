"""The other routes: Stripe's webhooks, /metrics, /healthz and /readyz, and the
websockets' close at shutdown."""

import asyncio
import hmac
import logging
import weakref

from aiohttp import WSCloseCode, web
from pymongo.errors import PyMongoError

from usercredits.server.keys import CLIENT, METRICS, SERVICES, SETTINGS, SOCKETS
from usercredits.server.metrics import CONTENT_TYPE
from usercredits.services.errors import InvalidInput, PaymentFailed
from usercredits.services.provider_events import handle_provider_event

log = logging.getLogger(__name__)


READY_TIMEOUT_SECONDS = 2.0


async def payment_webhook(request: web.Request) -> web.Response:
    """Verifies the provider's signature on the raw body, then applies the event once.
    A delivery that does not verify gets 400 and changes nothing."""
    services = request.app[SERVICES]
    received = request.app[METRICS].webhook_events
    body = await request.read()
    try:
        event = services.payments.parse_webhook(body, request.headers.get("Stripe-Signature"))
    except InvalidInput as exc:
        received.labels(type="", result="rejected").inc()
        return web.json_response({"error": exc.message}, status=400)
    try:
        outcome = await handle_provider_event(
            orders=services.orders, plans=services.plans, event=event, clock=services.clock
        )
    except PaymentFailed as exc:  # Stripe could not be asked what it needs: Stripe retries
        received.labels(type=event.type, result="retry").inc()
        return web.json_response({"error": exc.message}, status=503)
    received.labels(type=event.type, result=outcome).inc()
    log.info("payment event", extra={"event_id": event.id, "type": event.type, "outcome": outcome})
    return web.json_response({"received": True, "outcome": outcome})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of this process's metrics; with a metrics token set, only
    for `Authorization: Bearer <token>`."""
    token = request.app[SETTINGS].metrics_token
    if token is not None and not hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
    ):
        return web.json_response({"error": "send the metrics token"}, status=401)
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def close_websockets(app: web.Application) -> None:
    """On shutdown: tells every websocket client the server is going away (1001)."""
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The database answers; a load balancer should send no traffic otherwise."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await request.app[CLIENT].admin.command("ping")
    except (PyMongoError, TimeoutError) as exc:
        return web.json_response({"status": "not ready", "error": str(exc)}, status=503)
    return web.json_response({"status": "ready"})
