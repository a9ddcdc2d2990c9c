"""`usercredits webhooks listen`: a local receiver for trying webhooks on a laptop, as
`stripe listen` is for Stripe's. It verifies each delivery's signature with the
endpoint's secret and prints one JSON line per event on stdout (refusals on stderr)."""

import socket
import sys
import time

import orjson
from aiohttp import web

from usercredits.services.outbound.signing import BadSignature, verify


def listener_app(secret: str) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.text()
        try:
            verify(secret=secret, headers=request.headers, body=body, now=time.time())
        except BadSignature as exc:
            print(f"refused: {exc}", file=sys.stderr, flush=True)
            return web.json_response({"error": str(exc)}, status=400)
        event = orjson.loads(body)
        line = {"webhookId": request.headers["webhook-id"], **event}
        print(orjson.dumps(line).decode(), flush=True)
        return web.Response(status=204)

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/{tail:.*}", receive)
    return app


def listen(*, listening: socket.socket, secret: str) -> None:
    """Serves on `listening`, a socket already bound (server/ports.py), so that the line
    saying where it listens is true when it is read."""
    host, port = listening.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host  # an IPv6 address, as a URL writes it
    print(f"listening on http://{host}:{port}/ for signed webhooks", file=sys.stderr, flush=True)
    web.run_app(listener_app(secret), sock=listening, print=None, access_log=None)
