"""The demo page (`USERCREDITS_DEMO=true`, never in production): a person picks a demo user,
buys an offer in the sandbox and watches the balance move, with the client kit of
clients/js. Its script is that kit's bundle (`demo.js`, built by `npm run demo` there and
committed, so the service needs no Node.js to serve it).

It signs demo users in itself: `POST /demo/session` returns a token for one of
`DEMO_USERS`, signed with the service's HS256 secret, as `usercredits token` would.
"""

from datetime import timedelta
from pathlib import Path

from aiohttp import web

from usercredits.server.auth import TokenRules, issue_token
from usercredits.server.keys import SERVICES
from usercredits.services.identity.access import Role

HERE = Path(__file__).resolve().parent
DEMO_USERS = ("demo-1", "demo-2", "demo-3")
SESSION_TTL = timedelta(hours=1)
ASSETS = {"demo.js": "text/javascript", "demo.css": "text/css"}
_NO_STORE = {"Cache-Control": "no-store"}


def add_demo_routes(
    app: web.Application, rules: TokenRules, stripe_publishable_key: str | None
) -> None:
    """Serves the page at `/`, its two assets, and the demo sign-in (which tells the page
    Stripe.js's key when payments go to Stripe)."""

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(HERE / "index.html", headers=_NO_STORE)

    async def asset(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.FileResponse(HERE / name, headers={**_NO_STORE, "Content-Type": ASSETS[name]})

    async def session(request: web.Request) -> web.Response:
        try:
            user = (await request.json())["user"]
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text='send {"user": "<a demo user>"}') from None
        if user not in DEMO_USERS:
            raise web.HTTPBadRequest(text=f"demo users are {', '.join(DEMO_USERS)}")
        now = request.app[SERVICES].clock.now()  # the clock the server checks tokens by
        token = issue_token(rules=rules, user_id=user, roles=[Role.USER], ttl=SESSION_TTL, now=now)
        return web.json_response(
            {
                "userId": user,
                "token": token,
                "expiresIn": SESSION_TTL.total_seconds(),
                "stripePublishableKey": stripe_publishable_key,
            }
        )

    app.router.add_get("/", page)
    app.router.add_get("/demo/{name}", asset)
    app.router.add_post("/demo/session", session)
