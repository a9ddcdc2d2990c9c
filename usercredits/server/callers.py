"""Who calls /graphql, and whether they may yet: a middleware (`graphql_callers`) that gives
each request its caller's address and principal, under the typed keys the view reads
(server/keys.py), and takes a token of its caller's rate limit (server/ratelimit.py) or
answers 429 before the view is reached.

An HTTP request is authenticated here, once: the view, its context and its resolvers read
the principal this stored. A websocket connection attempt costs its address a token (its
credentials come later, in connection_init, which the view checks); its operations take
theirs through ratelimit.SocketOperations.
"""

from aiohttp import web
from aiohttp.typedefs import Handler

from usercredits.server.keys import (
    ADDRESS,
    AUTHENTICATOR,
    METRICS,
    PRINCIPAL,
    RATE_LIMITS,
    SETTINGS,
)
from usercredits.server.logs import request_id as current_request_id
from usercredits.server.media import GRAPHQL_RESPONSE, answer_type
from usercredits.server.ratelimit import caller_address, caller_key, retry_after
from usercredits.services.errors import Unauthenticated
from usercredits.services.identity.access import ANONYMOUS, Principal, refused

GRAPHQL_PATH = "/graphql"
"""The route whose callers this middleware admits; it lets every other request through."""


@web.middleware
async def graphql_callers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stores the caller's address and (over HTTP) principal on a /graphql request, then
    answers it 429 if its caller's bucket is empty, else hands it on."""
    resource = request.match_info.route.resource
    if resource is None or resource.canonical != GRAPHQL_PATH:
        return await handler(request)
    app = request.app
    # Every X-Forwarded-For line: a proxy may add its own rather than append.
    forwarded = ", ".join(request.headers.getall("X-Forwarded-For", [])) or None
    address = caller_address(request.remote, forwarded, app[SETTINGS].trusted_proxies)
    request[ADDRESS] = address
    principal = ANONYMOUS
    if not asks_for_websocket(request):
        principal = await authenticate(app, request.headers.get("Authorization"))
        request[PRINCIPAL] = principal
    wait = app[RATE_LIMITS].take(caller_key(principal, address))
    if wait:
        app[METRICS].refusals.labels(cause="rate_limited").inc()
        return rate_limited(wait, answer_type(request.headers.get("Accept")))
    return await handler(request)


def asks_for_websocket(request: web.Request) -> bool:
    """Whether the request is a websocket handshake (the view asks this too). The Upgrade
    header is looked at first: it spares the other requests building a WebSocketResponse
    to ask."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return False
    return web.WebSocketResponse().can_prepare(request).ok


async def authenticate(app: web.Application, header: object) -> Principal:
    """The caller of an HTTP request; anonymous (with the reason) when its credentials
    were refused, so that operations open to anyone still work."""
    try:
        principal = await app[AUTHENTICATOR].principal(header)
    except Unauthenticated as exc:
        app[METRICS].refusals.labels(cause="unauthenticated").inc()
        return refused(exc.message)
    return ANONYMOUS if principal is None else principal


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
