"""A deadline for request bodies.

aiohttp closes idle connections and slow headers, but a body announced as 100,000 bytes
and sent a byte every few seconds would hold its connection and handler for ever.
"""

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


def body_deadline(seconds: float) -> Middleware:
    """A middleware that reads a request's body within `seconds` of its headers, or answers
    408: aiohttp times out idle connections but not a body that trickles in a byte at a
    time. The body is kept, so handlers read it again at no cost."""

    @web.middleware
    async def read_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(seconds):
                    await request.read()
            except TimeoutError:
                return web.json_response(
                    {"error": f"the request body did not arrive within {seconds:g} s"},
                    status=408,
                    headers={"Connection": "close"},
                )
        return await handler(request)

    return read_in_time
