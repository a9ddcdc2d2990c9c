"""GraphiQL, served from this package: the page /graphql shows a browser, and its script
and stylesheet at /graphiql/, so it works offline and behind a network that lets a browser
reach only this server.

The assets are GraphiQL, React and the page's own script (clients/graphiql), installed from
the npm registry and bundled into `assets/` at build time (`make graphiql`, which `make run`
and `make test` call, and the Dockerfile's GraphiQL stage); they travel in the wheel
beside this module. The page names them by same-origin relative URLs, and its Content
Security Policy lets the browser fetch nothing from elsewhere.
"""

from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
ASSETS_DIR = HERE / "assets"
ASSETS = {
    "graphiql.js": "text/javascript; charset=utf-8",
    "graphiql.css": "text/css; charset=utf-8",
}
POLICY = "; ".join(
    (
        "default-src 'self'",
        # GraphiQL's components set style attributes and its editor inserts style elements.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
"""The page's own address and nothing else: its requests, its websocket (same origin), its
fonts and images (inlined in the stylesheet)."""
NOT_BUILT = (
    "GraphiQL's assets are not built: run `make graphiql` "
    "(npm ci and npm run build in clients/graphiql)"
)


def missing_assets() -> list[str]:
    """The assets a build has not put in place yet."""
    return [name for name in ASSETS if not (ASSETS_DIR / name).is_file()]


def graphiql_page() -> web.Response:
    """The GraphiQL page, or 503 with what to run when its assets are not built (a page
    that stays "Loading" would say nothing)."""
    if missing_assets():
        return web.Response(status=503, text=NOT_BUILT)
    return web.Response(
        body=(HERE / "index.html").read_bytes(),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-store"},
    )


async def graphiql_asset(request: web.Request) -> web.FileResponse:
    """One of the page's assets; a browser keeps it, but asks whether it changed (a new
    build) before using it again."""
    name = request.match_info["name"]
    if name not in ASSETS or not (ASSETS_DIR / name).is_file():
        raise web.HTTPNotFound(text=NOT_BUILT if name in ASSETS else "no such asset")
    return web.FileResponse(
        ASSETS_DIR / name,
        headers={"Content-Type": ASSETS[name], "Cache-Control": "no-cache"},
    )


def add_graphiql_routes(app: web.Application) -> None:
    """Serves the page's assets at /graphiql/; the page itself is the GraphQL view's, at
    /graphql, for a browser's GET without a query."""
    app.router.add_get("/graphiql/{name}", graphiql_asset)
