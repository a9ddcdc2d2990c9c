"""GraphiQL served from the package: the page names only same-origin assets, the server
serves each of them, and in a real Chromium that may reach nothing but the server,
GraphiQL renders, runs a query and a subscription, and asks for nothing elsewhere.

The assets are built by `make graphiql` (which `make test` runs) from clients/graphiql."""

import asyncio
import re
from collections.abc import AsyncIterator
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, Page, Request, Route, async_playwright, expect

from tests.api import token
from tests.conftest import StartServer
from tests.test_demo_page import FLAGS, WAIT_MS, chromium
from usercredits.server.graphiql import ASSETS, POLICY, missing_assets

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
REFERENCE = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]*)\"""")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]*)""")


@pytest.fixture
def built() -> None:
    assert not missing_assets(), f"GraphiQL's assets {missing_assets()} are not built: run make"


async def page_and_references(http: aiohttp.ClientSession, url: str) -> tuple[str, list[str]]:
    """The GraphiQL page at `url`/graphql and the URLs of what its HTML loads."""
    async with http.get(f"{url}/graphql", headers=BROWSER) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/html"
        assert response.headers["Content-Security-Policy"] == POLICY
        html = await response.text()
    return html, [urljoin(f"{url}/graphql", found) for found in REFERENCE.findall(html)]


async def test_the_page_loads_only_same_origin_assets_and_each_is_served(
    built: None, start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    url = await start_server()
    html, references = await page_and_references(http, url)
    assert "unpkg.com" not in html and "cdn" not in html.lower()
    origin = urlsplit(url)[:2]
    served: dict[str, str] = {}
    for reference in references:
        if reference.startswith("data:"):
            continue
        assert urlsplit(reference)[:2] == origin, f"{reference} is not on {url}"
        async with http.get(reference) as response:
            assert response.status == 200, reference
            served[reference.rsplit("/", 1)[-1]] = response.headers["Content-Type"]
            body = await response.text()
        if reference.endswith(".css"):
            elsewhere = [u for u in CSS_URL.findall(body) if not u.startswith(("data:", "#"))]
            assert not elsewhere, f"the stylesheet loads {elsewhere[:5]}"
    assert served == ASSETS


async def test_a_missing_or_unknown_asset_is_404(
    built: None, start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    url = await start_server()
    for name in ("nope.js", "..%2F__init__.py", "index.html"):
        async with http.get(f"{url}/graphiql/{name}") as response:
            assert response.status == 404, name


async def test_production_serves_neither_the_page_nor_its_assets(
    built: None, start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    url = await start_server(graphiql=False)
    async with http.get(f"{url}/graphql", headers=BROWSER) as response:
        assert response.status == 404
    async with http.get(f"{url}/graphiql/graphiql.js") as response:
        assert response.status == 404


@pytest.fixture
async def offline_page(built: None) -> AsyncIterator[tuple[Page, list[str], list[str]]]:
    """A Chromium page that may reach only 127.0.0.1, with the requests it tried
    elsewhere and the errors its console showed (a refused policy shows there)."""
    async with async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(
            executable_path=chromium(), args=FLAGS, timeout=30_000
        )
        try:
            page = await browser.new_page()
            elsewhere: list[str] = []
            errors: list[str] = []

            async def only_the_server(route: Route, request: Request) -> None:
                if urlsplit(request.url).hostname == "127.0.0.1":
                    await route.continue_()
                else:
                    elsewhere.append(request.url)
                    await route.abort()

            await page.route("**/*", only_the_server)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, elsewhere, errors
        finally:
            await browser.close()


async def run_operation(page: Page, document: str) -> None:
    """Types `document` in place of the query editor's text, as a person would, and runs
    it."""
    await page.locator(".graphiql-query-editor .CodeMirror").click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(document)
    await page.locator(".graphiql-execute-button").click()


@pytest.mark.timeout(120)
async def test_graphiql_renders_and_runs_operations_with_no_network_beyond_the_server(
    offline_page: tuple[Page, list[str], list[str]], start_server: StartServer
) -> None:
    page, elsewhere, errors = offline_page
    url = await start_server()
    await page.goto(f"{url}/graphql")
    response = page.locator(".graphiql-response")
    await expect(page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible(timeout=WAIT_MS)
    # The page's own example lists the offers, which need no sign-in.
    await page.locator(".graphiql-execute-button").click()
    await expect(response).to_contain_text('"offers": []', timeout=WAIT_MS)

    # A subscription signs in with the headers pane's Authorization, over the websocket.
    await page.get_by_text("Headers", exact=True).click()
    headers = page.locator(".graphiql-editor-tool .CodeMirror").last
    await expect(headers).to_be_visible(timeout=WAIT_MS)
    await page.evaluate(
        "(text) => [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')]"
        ".at(-1).CodeMirror.setValue(text)",
        f'{{"Authorization": "Bearer {token("alice")}"}}',
    )
    acknowledged = asyncio.Event()

    def received(frame: str | bytes) -> None:
        if '"connection_ack"' in str(frame):
            acknowledged.set()

    page.on("websocket", lambda socket: socket.on("framereceived", received))
    await run_operation(page, "subscription { balanceChanged { offerGroup } }")
    await expect(page.locator(".graphiql-execute-button")).to_have_attribute(
        "aria-label", re.compile("^Stop"), timeout=WAIT_MS
    )
    # Signed in: the server acknowledged the socket's connection_init.
    await asyncio.wait_for(acknowledged.wait(), WAIT_MS / 1000)
    await page.locator(".graphiql-execute-button").click()
    assert "error" not in (await response.inner_text()).lower()
    assert elsewhere == [], f"GraphiQL asked for {elsewhere}"
    assert errors == [], f"the console showed {errors}"
