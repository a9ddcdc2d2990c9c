"""/graphql: the GraphQL view, over HTTP (the media types of server/media.py, operations in
flight; the caller's principal and rate limit come from the middleware of
server/callers.py) and over graphql-transport-ws (sign-in at connection_init, the close
codes of server/socket_closes.py, a socket closed when its token lapses by the server's
clock)."""

import asyncio
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeGuard

import orjson
from aiohttp import web
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
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
from usercredits.server.auth import signs_in_with_api_key
from usercredits.server.callers import asks_for_websocket
from usercredits.server.concurrency import TOO_MANY_SOCKETS, OperationsInFlight, TooManySockets
from usercredits.server.graphiql import graphiql_page
from usercredits.server.keys import (
    ADDRESS,
    AUTHENTICATOR,
    CLOSING,
    IN_FLIGHT,
    KEY_SOCKETS,
    METRICS,
    OPEN_SOCKETS,
    PRINCIPAL,
    RATE_LIMITS,
    SERVICES,
    SOCKET,
    SOCKETS,
)
from usercredits.server.logs import request_id as current_request_id
from usercredits.server.media import (
    ANSWER_TYPE,
    GRAPHQL_RESPONSE,
    answer_type,
    graphql_response_answer,
    refused_before_running,
    request_error,
)
from usercredits.server.ratelimit import SocketOperations
from usercredits.server.revocation import CurrentKeys
from usercredits.server.settings import Settings
from usercredits.server.socket_closes import (
    FORBIDDEN,
    TOKEN_EXPIRED,
    TOKEN_EXPIRED_REASON,
    SocketRefused,
    close_reason,
    refusal,
)
from usercredits.services.errors import Unauthenticated

SUBSCRIPTIONS_OVER_SOCKETS = (
    "subscriptions run over the websocket at this address (graphql-transport-ws), not over HTTP"
)

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
        """A request the middleware of server/callers.py let through, with its caller's
        address and (over HTTP) principal. A websocket is counted against its caller's caps
        from connection_init until it closes."""
        try:
            return await self.run(request=request)
        except HTTPException as refusal:
            return self._refuse(refusal, answer_type(request.headers.get("Accept")))
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
        """The middleware's test (callers.asks_for_websocket), which looks for the Upgrade
        header first: that spares the other requests Strawberry's, which builds a
        WebSocketResponse to ask (and the view asks twice)."""
        return asks_for_websocket(request)

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
    """Closes `ws` at `at` by the services' clock with 4401, which tells its client to
    reconnect with a fresh token. The timer holds the socket weakly, so a socket that closed
    first is not kept alive until its token would have expired. (A clock a test moves on
    does not bring the timer forward; the socket's principal refuses operations once its
    token has lapsed by that clock.)"""
    socket_ref = weakref.ref(ws)

    def close() -> None:
        open_socket = socket_ref()
        if open_socket is not None and not open_socket.closed:
            task = asyncio.create_task(
                open_socket.close(code=TOKEN_EXPIRED, message=TOKEN_EXPIRED_REASON.encode())
            )
            app[CLOSING].add(task)
            task.add_done_callback(app[CLOSING].discard)

    delay = (at - app[SERVICES].clock.now()).total_seconds()
    asyncio.get_running_loop().call_later(max(delay, 0), close)
