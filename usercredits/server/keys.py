"""The typed keys under which the application, its requests and its websockets keep what
the view, the endpoints and the cleanup contexts share (server/app.py sets them)."""

import asyncio
import weakref
from typing import Any

from aiohttp import web
from pymongo import AsyncMongoClient

from usercredits.server.auth import Authenticator
from usercredits.server.concurrency import InFlight, OpenSockets
from usercredits.server.metrics import Metrics
from usercredits.server.ratelimit import TokenBuckets
from usercredits.server.revocation import KeySockets
from usercredits.server.settings import Settings
from usercredits.services import Services
from usercredits.services.identity.access import Principal

SETTINGS = web.AppKey("settings", Settings)
CLIENT = web.AppKey("client", AsyncMongoClient[Any])
SERVICES = web.AppKey("services", Services)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
RATE_LIMITS = web.AppKey("rate_limits", TokenBuckets)
PRINCIPAL = web.RequestKey("principal", Principal)
"""Where an HTTP request to /graphql keeps the principal its credentials gave: the
middleware of server/callers.py authenticates it once, the view reads it."""
ADDRESS = web.RequestKey("address", str)
"""Where a request to /graphql keeps its caller's address (server/callers.py), for its
rate limit and its context."""
SOCKET = web.RequestKey("socket", web.WebSocketResponse)
"""Where a websocket request keeps its socket, released from the caps when it closes."""
IN_FLIGHT = web.AppKey("in_flight", InFlight)
OPEN_SOCKETS = web.AppKey("open_sockets", OpenSockets)
METRICS = web.AppKey("metrics", Metrics)
SOCKETS = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])
CLOSING = web.AppKey("closing", set[asyncio.Task[bool]])
KEY_SOCKETS = web.AppKey("key_sockets", KeySockets)
