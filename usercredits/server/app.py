"""The aiohttp application: /graphql (HTTP and graphql-transport-ws), /webhooks/stripe,
/healthz, /readyz and /metrics.

The factory only wires: each resource (database, services, change feed, sweeper) has one
cleanup context that opens it before `yield` and closes it after, in reverse order, and
lives under a typed AppKey. On shutdown (SIGTERM) the server stops accepting, closes open
websockets with the going-away code, finishes in-flight requests, then closes the
resources, the embedded database last.
"""

import asyncio
import hmac
import logging
import os
import socket
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeGuard

import orjson
from aiohttp import WSCloseCode, web
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError
from strawberry.aiohttp.views import AiohttpWebSocketAdapter, GraphQLView
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.graphql import OperationType

from usercredits.api import build_schema
from usercredits.schema.context import Context
from usercredits.schema.errors import apply_contract
from usercredits.schema.limits import Limits
from usercredits.schema.persisted import PersistedQueries
from usercredits.server.auth import Authenticator, signs_in_with_api_key
from usercredits.server.changes import ChangeFeed, running_feed
from usercredits.server.concurrency import (
    TOO_MANY_SOCKETS,
    InFlight,
    OpenSockets,
    OperationsInFlight,
    TooManySockets,
)
from usercredits.server.database import is_sharded, open_database
from usercredits.server.deadlines import body_deadline
from usercredits.server.demo import add_demo_routes
from usercredits.server.dispatcher import Dispatcher
from usercredits.server.graphiql import add_graphiql_routes, graphiql_page
from usercredits.server.logs import request_id as current_request_id
from usercredits.server.logs import request_ids
from usercredits.server.media import (
    ANSWER_TYPE,
    GRAPHQL_RESPONSE,
    answer_type,
    graphql_response_answer,
    refused_before_running,
    request_error,
)
from usercredits.server.metrics import CONTENT_TYPE, Metrics
from usercredits.server.ratelimit import (
    SocketOperations,
    TokenBuckets,
    caller_address,
    caller_key,
    retry_after,
)
from usercredits.server.relay import EventRelay
from usercredits.server.revocation import CurrentKeys, KeySockets
from usercredits.server.settings import Settings
from usercredits.server.socket_closes import (
    FORBIDDEN,
    TOKEN_EXPIRED,
    TOKEN_EXPIRED_REASON,
    SocketRefused,
    close_reason,
    refusal,
)
from usercredits.server.sweeper import Lease, Sweeper
from usercredits.server.topups import TopUpTrigger
from usercredits.services import Services, build_services
from usercredits.services.catalogue.files import import_catalogue
from usercredits.services.clock import Clock, SystemClock
from usercredits.services.errors import InvalidInput, PaymentFailed, Unauthenticated
from usercredits.services.identity.access import ANONYMOUS, Principal, refused
from usercredits.services.limits import InputLimits
from usercredits.services.payments import PaymentClient, SandboxPaymentClient
from usercredits.services.payments.stripe import StripePaymentClient
from usercredits.services.provider_events import handle_provider_event

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0
"""How long a stopping server waits for its background tasks once cancelled."""

READY_TIMEOUT_SECONDS = 2.0

SUBSCRIPTIONS_OVER_SOCKETS = (
    "subscriptions run over the websocket at this address (graphql-transport-ws), not over HTTP"
)

SETTINGS = web.AppKey("settings", Settings)
CLIENT = web.AppKey("client", AsyncMongoClient[Any])
SERVICES = web.AppKey("services", Services)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
RATE_LIMITS = web.AppKey("rate_limits", TokenBuckets)
PRINCIPAL = web.RequestKey("principal", Principal)
"""Where a request keeps the principal its credentials gave (see CreditsGraphQLView)."""
ADDRESS = web.RequestKey("address", str)
"""Where a request keeps its caller's address, for its context."""
SOCKET = web.RequestKey("socket", web.WebSocketResponse)
"""Where a websocket request keeps its socket, released from the caps when it closes."""
IN_FLIGHT = web.AppKey("in_flight", InFlight)
OPEN_SOCKETS = web.AppKey("open_sockets", OpenSockets)
METRICS = web.AppKey("metrics", Metrics)
SOCKETS = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])
CLOSING = web.AppKey("closing", set[asyncio.Task[bool]])
KEY_SOCKETS = web.AppKey("key_sockets", KeySockets)

SIGN_IN = 'sign in: send {"authorization": "Bearer <token>"} in connection_init'
"""Why an anonymous websocket is refused."""


@dataclass
class SocketContext(Context):
    """The context of one websocket: its operations share it, and its principal."""

    websocket: web.WebSocketResponse | None = None


class SocketProtocol(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws, closing a socket its caller may not open with the
    code and reason on_ws_connect gives (SocketRefused: 4400, 4401 or 4403, see
    server/socket_closes.py; TooManySockets: 4429) rather than Strawberry's 4403 "Forbidden"
    for all, and letting go of a socket's connection-init timer once the socket is
    initialised: Strawberry cancels the timer's task but keeps it (about a kilobyte) for as
    long as the socket is open."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except SocketRefused as refused:
            await self.websocket.close(code=refused.code, reason=refused.reason)
        except TooManySockets as refusal:
            await self.websocket.close(code=TOO_MANY_SOCKETS, reason=str(refusal))
        self.connection_init_timeout_task = None


class SocketAdapter(AiohttpWebSocketAdapter):
    """Strawberry's aiohttp websocket, with every close reason cut to what a close frame
    holds: Strawberry's reasons quote what the client sent (an unknown message type, a
    subscription id already taken), and a longer reason fails the close itself."""

    async def close(self, code: int, reason: str) -> None:
        await super().close(code, close_reason(reason))


class CreditsGraphQLView(GraphQLView[Context, None]):
    """Strawberry's aiohttp view with our context, websocket auth and heartbeat, and the
    media types of GraphQL over HTTP (server/media.py), which Strawberry's view does not
    negotiate: it answers application/json whatever the request asks for."""

    graphql_transport_ws_handler_class = SocketProtocol
    websocket_adapter_class = SocketAdapter

    def __init__(self, *, app: web.Application, settings: Settings, sandbox: bool) -> None:
        super().__init__(
            schema=build_schema(
                limits=Limits(
                    max_depth=settings.max_query_depth,
                    max_tokens=settings.max_query_tokens,
                    max_aliases=settings.max_query_aliases,
                    max_fields=settings.max_expanded_fields,
                    budget_seconds=settings.validation_budget_ms / 1000,
                    max_cost=settings.max_query_cost,
                    max_provider_calls=settings.max_provider_calls,
                ),
                sandbox=sandbox,
                anonymous_introspection=settings.open_by_default(settings.anonymous_introspection),
                suggestions=settings.open_by_default(settings.field_suggestions),
                extensions=[
                    app[METRICS].extension(),
                    partial(
                        SocketOperations,
                        buckets=app[RATE_LIMITS],
                        refused=app[METRICS].refusals.labels(cause="rate_limited").inc,
                    ),
                    partial(OperationsInFlight, in_flight=app[IN_FLIGHT]),
                    partial(CurrentKeys, sockets=app[KEY_SOCKETS]),
                ],
            ),
            graphql_ide="graphiql" if settings.open_by_default(settings.graphiql) else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            allowed_origins=settings.allowed_origins,
        )
        self._app = app
        self._persisted = PersistedQueries(max_tokens=settings.max_query_tokens)
        self._heartbeat = settings.ws_heartbeat_seconds
        self._max_response_bytes = settings.max_response_bytes
        self._trusted_proxies = settings.trusted_proxies

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        if isinstance(response, web.WebSocketResponse):
            # Authenticated by connection_init (on_ws_connect), not by headers.
            return SocketContext(
                services=self._app[SERVICES],
                request_id=current_request_id.get(),
                websocket=response,
                address=request[ADDRESS],
            )
        return Context(
            services=self._app[SERVICES],
            principal=request[PRINCIPAL],
            request_id=current_request_id.get(),
            address=request[ADDRESS],
        )

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        """Every request first costs its caller a token of the rate limit: an HTTP request
        after its credentials are read, a websocket connection attempt by its address
        (its credentials come later, in connection_init). A websocket is counted against
        its caller's caps from connection_init until it closes."""
        # Every X-Forwarded-For line: a proxy may add its own rather than append.
        forwarded = ", ".join(request.headers.getall("X-Forwarded-For", [])) or None
        address = caller_address(request.remote, forwarded, self._trusted_proxies)
        request[ADDRESS] = address
        websocket = self.is_websocket_request(request)
        principal = ANONYMOUS
        if not websocket:
            principal = await self._principal(request.headers.get("Authorization"))
            request[PRINCIPAL] = principal
        media_type = answer_type(request.headers.get("Accept"))
        wait = self._app[RATE_LIMITS].take(caller_key(principal, address))
        if wait:
            self._app[METRICS].refusals.labels(cause="rate_limited").inc()
            return rate_limited(wait, media_type)
        try:
            return await self.run(request=request)
        except HTTPException as refusal:
            return self._refuse(refusal, media_type)
        finally:
            if SOCKET in request:
                self._app[OPEN_SOCKETS].release(request[SOCKET])

    async def execute_operation(
        self,
        request: web.Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: web.Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        """Puts a persisted query in place of its hash before the operation starts, here
        rather than in a schema extension's operation hook, which a subscription would hold
        open (costing memory) for as long as it lives. Batches are refused while parsing.
        An operation refused for its caller's operations in flight is answered 429, as one
        past the rate limit is; in application/graphql-response+json, one that failed
        before it ran is answered 400."""
        result = await self._execute(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        if isinstance(result, ExecutionResult):
            answer_refusal_with_429(result, sub_response)
            if (
                sub_response[ANSWER_TYPE] == GRAPHQL_RESPONSE
                and sub_response.status == 200
                and refused_before_running(result)
            ):
                sub_response.set_status(400)
        return result

    async def _execute(
        self,
        request: web.Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: web.Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        if isinstance(request_data, GraphQLRequestData):
            try:
                request_data.query = self._persisted.resolve(
                    request_data.query, request_data.extensions
                )
            except GraphQLError as error:
                apply_contract(error, context.request_id)
                return ExecutionResult(data=None, errors=[error])
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def execute_single(
        self,
        request: web.Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: web.Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, but without subscriptions, which run over the websocket: this
        view streams nothing over HTTP, and Strawberry's would run a subscription there as
        a query, whose field then fails internally on the stream it returns."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, SUBSCRIPTIONS_OVER_SOCKETS) from None
            raise HTTPException(400, exc.as_http_error_reason(request_adapter.method)) from None
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from None
        except MissingQueryError:
            raise HTTPException(400, "no GraphQL query found in the request") from None

    async def get_sub_response(self, request: web.Request) -> web.Response:
        """The response an operation's answer goes into, knowing the media type its
        request asked for."""
        response = web.Response()
        response[ANSWER_TYPE] = answer_type(request.headers.get("Accept"))
        return response

    def _refuse(self, refusal: HTTPException, media_type: str) -> web.Response:
        """A request refused before any operation ran (not JSON, not a GraphQL request, an
        operation it does not name, a method GraphQL has no use for): its reason as a
        GraphQL error, in the media type it asked for, so that a client reads it as it
        reads any other."""
        return web.Response(
            text=self.encode_json(request_error(refusal.reason, current_request_id.get())),
            status=refusal.status_code,
            content_type=media_type,
        )

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        """Our GraphiQL page, whose assets this server serves, instead of Strawberry's,
        which loads them from a CDN (a blank page offline)."""
        return graphiql_page()

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        """GraphiQL for a browser's GET without a query, but not for a GET that names a
        persisted query by its hash (which has no `query` either)."""
        return "extensions" not in request.query_params and super().should_render_graphql_ide(
            request
        )

    def is_websocket_request(self, request: web.Request) -> TypeGuard[web.Request]:
        """Looking for the Upgrade header first spares the other requests the view's own
        test, which builds a WebSocketResponse to ask (and the view asks twice)."""
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        return upgrade and super().is_websocket_request(request)

    async def _principal(self, header: object) -> Principal:
        """The caller of an HTTP request; anonymous (with the reason) when its credentials
        were refused, so that operations open to anyone still work."""
        try:
            principal = await self._app[AUTHENTICATOR].principal(header)
        except Unauthenticated as exc:
            self._app[METRICS].refusals.labels(cause="unauthenticated").inc()
            return refused(exc.message)
        return ANONYMOUS if principal is None else principal

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: web.Response,
    ) -> web.Response:
        """The response in the media type its request asked for, unless it would be larger
        than the settings allow: then one error that says so, rather than megabytes the
        caller did not mean to ask for."""
        media_type = sub_response[ANSWER_TYPE]
        if media_type == GRAPHQL_RESPONSE:
            response_data = graphql_response_answer(response_data, sub_response.status)
        response = super().create_response(response_data, sub_response)
        response.content_type = media_type
        if response.text is not None and len(response.text) > self._max_response_bytes:
            response.text = self.encode_json(
                {
                    "data": None,
                    "errors": [
                        {
                            "message": f"the response would exceed "
                            f"{self._max_response_bytes} bytes; ask for fewer items per page",
                            "extensions": {
                                "code": "BAD_USER_INPUT",
                                "requestId": current_request_id.get(),
                            },
                        }
                    ],
                }
            )
        return response

    def encode_json(self, data: object) -> str:
        """orjson, several times faster than the standard library on every response and
        every websocket message; text, as websocket messages must be."""
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> dict[str, object]:
        """A request body (or GET `variables`) must be one JSON object: bytes that are not
        UTF-8, nesting deep enough to exhaust the parser, or any other JSON value get a
        clean 400 rather than an exception."""
        try:
            parsed = self.decode_json(data)
        except ValueError:  # orjson's JSONDecodeError: bad UTF-8, syntax, nesting too deep
            raise HTTPException(400, "the request body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise HTTPException(400, "a GraphQL request is a JSON object") from None
        return parsed

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Authenticates a websocket from its connection_init payload's `authorization`;
        refused credentials close it with the code that says what would do (SocketRefused),
        anonymous sockets are refused (4403), and so are those past their user's or
        address's cap (TooManySockets). A socket is closed when its token expires (4401) or
        its API key is revoked (4403, server/revocation.py)."""
        header = context.connection_params.get("authorization")
        try:
            principal = await self._app[AUTHENTICATOR].principal(header)
        except Unauthenticated as exc:
            self._app[METRICS].refusals.labels(cause="unauthenticated").inc()
            raise refusal(exc) from None
        if principal is None:
            raise SocketRefused(FORBIDDEN, SIGN_IN)
        context.principal = principal
        if isinstance(context, SocketContext):
            assert context.websocket is not None, "a socket context carries its socket"
            self._app[OPEN_SOCKETS].admit(
                context.websocket, user=principal.require_signed_in(), address=context.address
            )
            if principal.expires_at is not None:
                close_when_expired(self._app, context.websocket, principal.expires_at)
            elif signs_in_with_api_key(header):
                self._app[KEY_SOCKETS].add(context.websocket, str(header))
        return None

    async def create_websocket_response(
        self, request: web.Request, subprotocol: str | None
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            protocols=[subprotocol] if subprotocol else [], heartbeat=self._heartbeat
        )
        await ws.prepare(request)
        self._app[SOCKETS].add(ws)
        request[SOCKET] = ws
        return ws


def rate_limited(wait: float, media_type: str) -> web.Response:
    """429 in `media_type`, with the error as the contract shows it and how long to wait
    (no `data` entry in application/graphql-response+json: nothing ran)."""
    seconds = retry_after(wait)
    error = {
        "message": f"too many requests: retry in {seconds} s",
        "extensions": {
            "code": "RATE_LIMITED",
            "retryAfterSeconds": seconds,
            "requestId": current_request_id.get(),
        },
    }
    body = (
        {"errors": [error]} if media_type == GRAPHQL_RESPONSE else {"data": None, "errors": [error]}
    )
    return web.json_response(
        body, status=429, headers={"Retry-After": str(seconds)}, content_type=media_type
    )


def answer_refusal_with_429(result: ExecutionResult, response: web.Response) -> None:
    """Gives the response of an operation refused as RATE_LIMITED the status and the
    Retry-After header of a request past the rate limit."""
    errors = result.errors or []
    if result.data is not None or len(errors) != 1:
        return
    extensions = errors[0].extensions or {}
    if extensions.get("code") == "RATE_LIMITED":
        response.set_status(429)
        response.headers["Retry-After"] = str(extensions.get("retryAfterSeconds", 1))


def close_when_expired(app: web.Application, ws: web.WebSocketResponse, at: datetime) -> None:
    """Closes `ws` at `at` with 4401, which tells its client to reconnect with a fresh
    token. The timer holds the socket weakly, so a socket that closed first is not kept
    alive until its token would have expired."""
    socket_ref = weakref.ref(ws)

    def close() -> None:
        open_socket = socket_ref()
        if open_socket is not None and not open_socket.closed:
            task = asyncio.create_task(
                open_socket.close(code=TOKEN_EXPIRED, message=TOKEN_EXPIRED_REASON.encode())
            )
            app[CLOSING].add(task)
            task.add_done_callback(app[CLOSING].discard)

    delay = (at - datetime.now(UTC)).total_seconds()
    asyncio.get_running_loop().call_later(max(delay, 0), close)


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


async def services_for(
    settings: Settings, client: AsyncMongoClient[Any], payments: PaymentClient, clock: Clock
) -> Services:
    """The services as `settings` configure them, over `client`: the server and every
    command line tool build them here, so both apply the same limits."""
    return build_services(
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
        middlewares=[request_ids, body_deadline(settings.request_body_seconds)],
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

    async def database(app: web.Application) -> AsyncIterator[None]:
        async with open_database(settings) as client:
            app[CLIENT] = client
            app[SERVICES] = await services_for(settings, client, provider, clock)
            app[AUTHENTICATOR] = Authenticator(
                rules=settings.token_rules,
                oidc=settings.oidc_rules,
                api_keys=app[SERVICES].api_keys,
            )
            if seed is not None:
                await seed_catalogue(app[SERVICES], seed)
            yield
            await app[AUTHENTICATOR].close()
            await provider.close()

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

    app.cleanup_ctx.extend([database, revocations, change_feed, sweeper, webhooks])
    app.on_shutdown.append(close_websockets)
    view = CreditsGraphQLView(
        app=app, settings=settings, sandbox=isinstance(provider, SandboxPaymentClient)
    )
    app.router.add_route("*", "/graphql", view)
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
