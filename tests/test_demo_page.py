"""The demo page in a real Chromium (Debian's, driven by Playwright): a purchase in the
sandbox shows on the page without a reload, a second tab sees a debit made in the first,
and the page recovers from a server restart that drops its websocket.

Chromium is found as `USERCREDITS_CHROMIUM` or `chromium` on PATH; `make browser` (run by
.ci/run) installs it. A missing browser fails these tests: it is never a skip.
Screenshots are saved under `USERCREDITS_ARTIFACTS` (default: the test's tmp_path)."""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from tests.api import Api, token
from tests.conftest import Servers, StartServer
from tests.fake_stripe import FakeStripe, server_settings
from usercredits.server.embedded import free_port
from usercredits.server.settings import Settings
from usercredits.services.access import Role

# As the environment's notes advise: no first-run, sync or component traffic that this
# machine's closed network would refuse.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000

UPSERT = "mutation($input: OfferInput!) { upsertOffer(input: $input) { id } }"
CONSUME = """mutation($input: ConsumeTokensInput!) { consumeTokens(input: $input) { id } }"""


def chromium() -> str:
    found = os.environ.get("USERCREDITS_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("Chromium is missing: `make browser` installs Debian's chromium package")
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium(), args=FLAGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("USERCREDITS_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def demo(servers: Servers, http: aiohttp.ClientSession) -> str:
    """A demo server with one offer on sale; returns its address."""
    url = await servers.start(demo=True, port=free_port())
    await Api(http, f"{url}/graphql").data(
        UPSERT,
        {
            "input": {
                "name": "Chat pack",
                "kind": "TOKENS",
                "offerGroup": "chat",
                "tokenCount": 500,
                "prices": [{"amount": "4.99", "currency": "USD"}],
                "cycle": "ONCE",
            }
        },
        as_=token("admin", Role.ADMIN),
    )
    return url


async def open_page(browser: Browser, url: str) -> Page:
    page = await browser.new_page(viewport={"width": 390, "height": 900})
    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("live", timeout=WAIT_MS)
    return page


def amount(page: Page, group: str = "chat") -> Locator:
    return page.locator(f'.balance[data-group="{group}"] .amount')


async def buy_chat_pack(page: Page) -> None:
    await page.get_by_role("button", name="Buy Chat pack").click()
    await expect(amount(page)).to_have_text("500", timeout=WAIT_MS)


@pytest.mark.timeout(60)
async def test_a_purchase_shows_on_the_page_without_a_reload(
    browser: Browser, demo: str, artifacts: Path
) -> None:
    page = await open_page(browser, demo)
    await expect(page.locator("#balances")).to_contain_text("No tokens yet")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    await buy_chat_pack(page)

    await expect(page.locator("#notice")).to_have_text("Order paid: 500 tokens")
    await expect(page.locator("#last-change")).to_have_text("chat: +500 (purchase)")
    await expect(page.locator("#ledger tr")).to_have_count(1)
    await expect(page.locator("#ledger tr").first).to_contain_text("purchase")
    assert navigations == [], "the page was reloaded"
    await page.screenshot(path=artifacts / "demo-purchase.png", full_page=True)


@pytest.mark.timeout(60)
async def test_a_second_tab_sees_a_debit_made_in_the_first(
    browser: Browser, demo: str, artifacts: Path
) -> None:
    first = await open_page(browser, demo)
    await buy_chat_pack(first)
    second = await open_page(browser, demo)
    await expect(amount(second)).to_have_text("500")

    await first.get_by_label("Tokens").fill("7")
    await first.get_by_role("button", name="Consume").click()

    await expect(amount(second)).to_have_text("493", timeout=WAIT_MS)
    await expect(second.locator("#last-change")).to_have_text("chat: -7 (consumption)")
    await expect(second.locator('.balance[data-group="chat"] tbody tr')).to_contain_text(
        "493 / 500"
    )
    await first.get_by_label("Tokens").fill("9999")
    await first.get_by_role("button", name="Consume").click()
    await expect(first.locator("#problem")).to_contain_text("INSUFFICIENT_TOKENS")
    await expect(amount(second)).to_have_text("493")
    await second.screenshot(path=artifacts / "demo-second-tab.png", full_page=True)


@pytest.mark.timeout(60)
async def test_the_page_recovers_when_the_server_drops_its_websocket(
    browser: Browser,
    demo: str,
    servers: Servers,
    http: aiohttp.ClientSession,
    artifacts: Path,
) -> None:
    page = await open_page(browser, demo)
    await buy_chat_pack(page)

    # The page's server goes away (a deploy); another instance takes a debit meanwhile.
    await servers.stop(demo)
    await expect(page.locator("#connection")).to_have_text("reconnecting", timeout=WAIT_MS)
    other = await servers.start()
    await Api(http, f"{other}/graphql").data(
        CONSUME,
        {"input": {"offerGroup": "chat", "tokens": 42, "idempotencyKey": "while-away"}},
        as_=token("demo-1"),
    )
    await expect(amount(page)).to_have_text("500")

    port = int(demo.rsplit(":", 1)[1])
    assert await servers.start(demo=True, port=port) == demo
    await expect(page.locator("#connection")).to_have_text("live", timeout=WAIT_MS)
    await expect(amount(page)).to_have_text("458", timeout=WAIT_MS)
    await page.screenshot(path=artifacts / "demo-reconnected.png", full_page=True)

    await page.get_by_label("Tokens").fill("8")
    await page.get_by_role("button", name="Consume").click()
    await expect(amount(page)).to_have_text("450", timeout=WAIT_MS)


@pytest.mark.timeout(60)
async def test_a_plan_subscribed_on_the_page_credits_and_can_be_canceled(
    browser: Browser, demo: str, http: aiohttp.ClientSession, artifacts: Path
) -> None:
    await Api(http, f"{demo}/graphql").data(
        UPSERT,
        {
            "input": {
                "name": "Pro monthly",
                "kind": "SUBSCRIPTION",
                "offerGroup": "pro",
                "tokenCount": 300,
                "prices": [{"amount": "9.99", "currency": "USD"}],
                "cycle": "MONTHLY",
            }
        },
        as_=token("admin", Role.ADMIN),
    )
    page = await open_page(browser, demo)
    await expect(page.locator("#plans")).to_contain_text("None")

    await page.get_by_role("button", name="Subscribe to Pro monthly").click()
    await expect(amount(page, "pro")).to_have_text("300", timeout=WAIT_MS)
    plan = page.locator(".plan")
    await expect(plan).to_have_attribute("data-status", "ACTIVE")
    await expect(plan).to_contain_text("pro plan: active, renews")

    await page.get_by_role("button", name="Cancel: pro plan").click()
    await expect(plan).to_contain_text("pro plan: active, ends", timeout=WAIT_MS)
    await page.get_by_role("button", name="Resume: pro plan").click()
    await expect(plan).to_contain_text("renews", timeout=WAIT_MS)
    await page.get_by_role("button", name="End now: pro plan").click()
    await expect(plan).to_have_attribute("data-status", "CANCELED", timeout=WAIT_MS)
    await expect(amount(page, "pro")).to_have_text("300")  # the paid period's tokens stay
    await page.screenshot(path=artifacts / "demo-plan.png", full_page=True)


async def test_the_demo_signs_in_only_its_own_users(demo: str, http: aiohttp.ClientSession) -> None:
    for body in ({"user": "admin"}, {"user": ["demo-1"]}, {}, "demo-1"):
        async with http.post(f"{demo}/demo/session", json=body) as refused:
            assert refused.status == 400, body
    async with http.post(f"{demo}/demo/session", json={"user": "demo-2"}) as answer:
        assert answer.status == 200
        session = await answer.json()
    wallet = await Api(http, f"{demo}/graphql").data("{ wallet { userId } }", as_=session["token"])
    assert wallet == {"wallet": {"userId": "demo-2"}}
    admin_only = "{ apiKeys { id } }"
    assert await Api(http, f"{demo}/graphql").error_code(admin_only, as_=session["token"]) == (
        "FORBIDDEN"
    )
    for name in ("__init__.py", "..%2F__init__.py", "index.html"):
        async with http.get(f"{demo}/demo/{name}") as missing:
            assert missing.status == 404, name
    async with http.get(f"{demo}/demo/demo.js") as script:
        assert script.status == 200
        assert script.content_type == "text/javascript"


async def test_without_the_demo_setting_there_is_no_page_and_no_sign_in(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    url = await start_server()
    async with http.get(f"{url}/") as page:
        assert page.status == 404
    async with http.post(f"{url}/demo/session", json={"user": "demo-1"}) as session:
        assert session.status in (404, 405)


async def test_with_stripe_the_demo_page_is_given_the_publishable_key(
    start_server: StartServer,
    http: aiohttp.ClientSession,
    fake_stripe: tuple[FakeStripe, str],
) -> None:
    _, stripe_api = fake_stripe
    paid = await start_server(
        demo=True, stripe_publishable_key="pk_test_demo", **server_settings(stripe_api)
    )
    # A key without Stripe payments (the sandbox) is not handed on.
    sandboxed = await start_server(demo=True, stripe_publishable_key="pk_test_demo")
    for url, key in ((paid, "pk_test_demo"), (sandboxed, None)):
        async with http.post(f"{url}/demo/session", json={"user": "demo-1"}) as answer:
            assert (await answer.json())["stripePublishableKey"] == key


def test_the_demo_needs_hs256_tokens_to_sign_its_users_in() -> None:
    with pytest.raises(ValueError, match="USERCREDITS_JWT_SECRET"):
        Settings(demo=True, oidc_issuer="https://id.example.com", oidc_audience="credits")


def test_the_demo_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="USERCREDITS_DEMO"):
        Settings(
            production=True,
            demo=True,
            jwt_secret="x" * 32,
            payments="stripe",
            stripe_secret_key="sk_test_x",
            stripe_webhook_secret="whsec_x",
        )
