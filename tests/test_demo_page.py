"""The demo page in a real Chromium (Debian's, driven by Playwright), as a product page: it
shows what a user has (live balances with their charts), what they can buy (offers told in
words: a bundle's items, a plan's renewal) and what they spent (the ledger); every action
gives feedback, a refusal is told in words, an action that ends a plan asks first, a
purchase that replaces an offer updates the offers without a reload, and at phone width
nothing scrolls sideways. It also recovers from a server restart that drops its websocket.

Chromium is found as `USERCREDITS_CHROMIUM` or `chromium` on PATH; `make browser` (run by
.ci/run) installs it. A missing browser fails these tests: it is never a skip.
Screenshots at desktop and phone width are saved in the folder `USERCREDITS_ARTIFACTS` names
(.ci/run sets .ci/artifacts); without it none is written, and every check still runs."""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    Dialog,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.api import Api, token
from tests.conftest import Servers, StartServer
from tests.fake_stripe import FakeStripe, server_settings
from tests.shop import upsert_offer
from usercredits.server.embedded import free_port
from usercredits.server.settings import Settings
from usercredits.services.identity.access import Role

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
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 812}

CONSUME = """mutation($input: ConsumeTokensInput!) { consumeTokens(input: $input) { id } }"""
PLANS = "{ wallet { plans { status cancelAtPeriodEnd } } }"
ADMIN = token("admin", Role.ADMIN)

# Every element whose right edge passes the viewport's, and how wide the document is.
OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter((e) => {
      const box = e.getBoundingClientRect();
      return box.width > 0 && box.right > width + 0.5;
    })
    .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.getAttribute("class") ?? ""}`);
  return { scrollWidth: document.documentElement.scrollWidth, width, wide };
}"""


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
def artifacts() -> Path | None:
    """The folder screenshots go to, made if missing; None when none is asked for."""
    named = os.environ.get("USERCREDITS_ARTIFACTS")
    if not named:
        return None
    folder = Path(named)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def shoot(page: Page, artifacts: Path | None, name: str) -> None:
    if artifacts is not None:
        # From the top, where the message bar sits in its place rather than over a card.
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=artifacts / f"{name}.png", full_page=True)


CHAT_PACK = {
    "name": "Chat pack",
    "kind": "TOKENS",
    "offerGroup": "chat",
    "tokenCount": 500,
    "prices": [{"amount": "4.99", "currency": "USD"}],
    "cycle": "ONCE",
}
"""An OfferInput: 500 chat tokens for 4.99 USD, once."""


async def upsert(url: str, http: aiohttp.ClientSession, **fields: Any) -> str:
    """An offer made by an admin through the API: CHAT_PACK changed by `fields`."""
    return await upsert_offer(Api(http, f"{url}/graphql"), **{**CHAT_PACK, **fields})


@pytest.fixture
async def demo(servers: Servers, http: aiohttp.ClientSession) -> str:
    """A demo server with one offer on sale; returns its address."""
    url = await servers.start(demo=True, port=free_port())
    await upsert(url, http)
    return url


@pytest.fixture
async def stocked(demo: str, http: aiohttp.ClientSession) -> str:
    """The demo server with the example catalogue's shapes: a monthly plan, a pack replaced
    by its Pro price for Pro subscribers (the same overridingKey), and a yearly bundle of
    both."""
    pro = await upsert(
        demo,
        http,
        name="Pro monthly",
        kind="SUBSCRIPTION",
        offerGroup="pro",
        tokenCount=300,
        prices=[{"amount": "9.99", "currency": "USD"}],
        cycle="MONTHLY",
    )
    pack = await upsert(demo, http, name="Chat pack (overridable)", overridingKey="chat-pack")
    await upsert(
        demo,
        http,
        name="Chat pack, Pro price",
        overridingKey="chat-pack",
        unlockedBy=["pro"],
        prices=[{"amount": "2.99", "currency": "USD"}],
    )
    await upsert(
        demo,
        http,
        name="Starter bundle",
        kind="SUBSCRIPTION",
        offerGroup="bundle",
        tokenCount=0,
        prices=[{"amount": "199.00", "currency": "USD"}],
        cycle="YEARLY",
        combinedItems=[
            {"offerId": pro, "quantity": 1, "cycle": "YEARLY"},
            {"offerId": pack, "quantity": 2},
        ],
    )
    return demo


async def open_page(browser: Browser, url: str, viewport: ViewportSize = PHONE) -> Page:
    page = await browser.new_page(viewport=viewport)
    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("live", timeout=WAIT_MS)
    return page


def amount(page: Page, group: str = "chat") -> Locator:
    return page.locator(f'.balance[data-group="{group}"] .amount')


def chart(page: Page, group: str = "chat") -> Locator:
    return page.locator(f'.balance[data-group="{group}"] svg.chart')


def offer(page: Page, name: str) -> Locator:
    return page.locator(".offer").filter(has=page.get_by_role("heading", name=name, exact=True))


async def buy_chat_pack(page: Page) -> None:
    await page.get_by_role("button", name="Buy Chat pack", exact=True).click()
    await expect(amount(page)).to_have_text("500", timeout=WAIT_MS)


async def spend(page: Page, action: str, tokens: int) -> None:
    await page.get_by_label("Tokens", exact=True).fill(str(tokens))
    await page.get_by_role("button", name=action, exact=True).click()


def answer_dialogs(page: Page, accept: bool) -> list[str]:
    """Answers every confirmation the page asks from now on; returns their questions."""
    asked: list[str] = []

    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await (dialog.accept() if accept else dialog.dismiss())

    page.on("dialog", answer)
    return asked


async def assert_nothing_overflows(page: Page) -> None:
    measured = await page.evaluate(OVERFLOW)
    assert measured["scrollWidth"] <= measured["width"], measured
    assert measured["wide"] == [], measured


@pytest.mark.timeout(60)
async def test_a_purchase_shows_on_the_page_without_a_reload(
    browser: Browser, demo: str, artifacts: Path | None
) -> None:
    page = await open_page(browser, demo)
    await expect(page.locator("#balances")).to_contain_text("No tokens yet")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    await buy_chat_pack(page)

    await expect(page.locator("#notice")).to_have_text(
        "Bought Chat pack: 500 chat tokens that never expire."
    )
    await expect(page.locator("#last-change")).to_have_text("chat: +500 (purchase)")
    await expect(page.locator("#ledger tr")).to_have_count(1)
    await expect(page.locator("#ledger tr").first).to_contain_text("purchase")
    await expect(chart(page)).to_have_attribute("data-points", "1", timeout=WAIT_MS)
    await expect(chart(page)).to_have_attribute("data-last", "500")
    assert navigations == [], "the page was reloaded"
    await shoot(page, artifacts, "demo-purchase")


@pytest.mark.timeout(60)
async def test_a_second_tab_sees_a_debit_made_in_the_first(
    browser: Browser, demo: str, artifacts: Path | None
) -> None:
    first = await open_page(browser, demo)
    await buy_chat_pack(first)
    second = await open_page(browser, demo)
    await expect(amount(second)).to_have_text("500")

    await spend(first, "Consume", 7)

    await expect(amount(second)).to_have_text("493", timeout=WAIT_MS)
    await expect(second.locator("#last-change")).to_have_text("chat: -7 (consumption)")
    await expect(second.locator('.balance[data-group="chat"] tbody tr')).to_contain_text(
        "493 / 500"
    )
    # The chart follows live: a second step, at the new balance.
    await expect(chart(second)).to_have_attribute("data-points", "2", timeout=WAIT_MS)
    await expect(chart(second)).to_have_attribute("data-last", "493")
    await spend(first, "Consume", 9999)
    problem = first.locator("#problem")
    await expect(problem.locator(".sentence")).to_have_text(
        "Not enough tokens for that. Buy more below, or use fewer."
    )
    await expect(problem.locator(".detail")).to_contain_text("INSUFFICIENT_TOKENS")
    await expect(first.locator("#notice")).to_be_hidden()  # the older notice made way
    await expect(amount(second)).to_have_text("493")
    await shoot(second, artifacts, "demo-second-tab")


@pytest.mark.timeout(60)
async def test_the_page_recovers_when_the_server_drops_its_websocket(
    browser: Browser,
    demo: str,
    servers: Servers,
    http: aiohttp.ClientSession,
    artifacts: Path | None,
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
    await shoot(page, artifacts, "demo-reconnected")

    await spend(page, "Consume", 8)
    await expect(amount(page)).to_have_text("450", timeout=WAIT_MS)


@pytest.mark.timeout(60)
async def test_a_plan_subscribed_on_the_page_credits_and_can_be_canceled(
    browser: Browser, stocked: str, artifacts: Path | None
) -> None:
    page = await open_page(browser, stocked)
    await expect(page.locator("#plans")).to_contain_text("None")
    asked = answer_dialogs(page, accept=True)

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
    assert [question.split("?")[0] for question in asked] == [
        "Cancel the pro plan",
        "End the pro plan now",
    ]
    await shoot(page, artifacts, "demo-plan")


@pytest.mark.timeout(60)
async def test_offers_say_what_they_give_and_the_page_fits_a_desktop_and_a_phone(
    browser: Browser, stocked: str, artifacts: Path | None
) -> None:
    page = await open_page(browser, stocked, DESKTOP)
    bundle = offer(page, "Starter bundle")
    await expect(bundle.locator(".gives li")).to_have_text(
        ["300 pro tokens valid for a year", "1,000 chat tokens valid for a year"]
    )
    await expect(bundle).not_to_contain_text("bundle tokens")
    await expect(offer(page, "Pro monthly").locator(".terms")).to_have_text(
        "Subscribe: renews every month until you cancel. Buy: a month, no renewal."
    )
    await expect(offer(page, "Chat pack").locator(".gives")).to_have_text(
        "500 chat tokens that never expire"
    )
    await expect(offer(page, "Chat pack").locator(".terms")).to_have_text(
        "One payment, no renewal."
    )
    await expect(offer(page, "Chat pack").get_by_role("button")).to_have_text(["Buy"])

    # Every part filled in: balances with charts, a hold, a plan, the ledger.
    await buy_chat_pack(page)
    await spend(page, "Reserve", 20)
    await expect(page.locator("#reservations .hold")).to_have_count(1)
    await page.get_by_role("button", name="Subscribe to Pro monthly").click()
    await expect(page.locator(".plan")).to_have_attribute("data-status", "ACTIVE")
    # The pack, the hold, the plan's first period.
    await expect(page.locator("#ledger tr")).to_have_count(3, timeout=WAIT_MS)

    for viewport, name in ((DESKTOP, "demo-desktop"), (PHONE, "demo-phone")):
        await page.set_viewport_size(viewport)
        await assert_nothing_overflows(page)
        # What you have, then what you can buy, then what you spent.
        tops = [
            (await page.locator(f"#{part}").bounding_box() or {"y": -1.0})["y"]
            for part in ("have", "buy", "spent")
        ]
        assert tops[0] < tops[1] <= tops[2], (name, tops)
        await shoot(page, artifacts, name)
    # On a phone the ledger is a list: no header row, each cell names its column.
    await expect(page.locator(".ledger thead")).to_be_hidden()
    cell = page.locator("#ledger td[data-label='Reason']").first
    label = await cell.evaluate("(e) => getComputedStyle(e, '::before').content")
    assert label == '"Reason: "'


@pytest.mark.timeout(60)
async def test_subscribing_replaces_the_overridden_offer_without_a_reload(
    browser: Browser, stocked: str
) -> None:
    page = await open_page(browser, stocked)
    await expect(offer(page, "Chat pack (overridable)")).to_have_count(1)
    await expect(offer(page, "Chat pack, Pro price")).to_have_count(0)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    await page.get_by_role("button", name="Subscribe to Pro monthly").click()

    await expect(offer(page, "Chat pack (overridable)")).to_have_count(0, timeout=WAIT_MS)
    await expect(offer(page, "Chat pack, Pro price")).to_contain_text("$2.99")
    await page.get_by_role("button", name="Buy Chat pack, Pro price").click()
    await expect(page.locator("#notice")).to_contain_text("Bought Chat pack, Pro price")
    await expect(amount(page)).to_have_text("500", timeout=WAIT_MS)
    await expect(page.locator("#problem")).to_be_hidden()
    assert navigations == [], "the page was reloaded"


@pytest.mark.timeout(60)
async def test_an_offer_taken_off_sale_meanwhile_is_refused_in_words_and_leaves_the_list(
    browser: Browser, stocked: str, http: aiohttp.ClientSession
) -> None:
    page = await open_page(browser, stocked)
    await expect(offer(page, "Chat pack (overridable)")).to_have_count(1)
    taken_off = await offer(page, "Chat pack (overridable)").get_attribute("data-offer")
    archive = "mutation($id: ID!) { archiveOffer(id: $id) { id } }"
    await Api(http, f"{stocked}/graphql").data(archive, {"id": taken_off}, as_=ADMIN)

    await page.get_by_role("button", name="Buy Chat pack (overridable)").click()

    problem = page.locator("#problem")
    await expect(problem.locator(".sentence")).to_have_text(
        "That offer is no longer on sale to you. The offers are up to date now: pick one of them."
    )
    await expect(problem.locator(".detail")).to_contain_text("OFFER_NOT_AVAILABLE")
    await expect(offer(page, "Chat pack (overridable)")).to_have_count(0, timeout=WAIT_MS)
    await expect(page.locator("#balances")).to_contain_text("No tokens yet")


@pytest.mark.timeout(90)
async def test_every_action_gives_feedback_and_notices_make_way(
    browser: Browser, stocked: str, http: aiohttp.ClientSession
) -> None:
    page = await open_page(browser, stocked, DESKTOP)
    answer_dialogs(page, accept=True)
    notice = page.locator("#notice")

    async def says(click: Locator, words: str) -> None:
        await click.click()
        await expect(notice).to_contain_text(words, timeout=WAIT_MS)

    await page.get_by_role("button", name="Consume").click()
    await expect(page.locator("#problem")).to_have_text(
        "You have no tokens to use yet. Buy an offer below first."
    )
    await says(page.get_by_role("button", name="Buy Chat pack", exact=True), "Bought Chat pack")
    await page.get_by_label("Tokens", exact=True).fill("10")
    await says(page.get_by_role("button", name="Consume"), "Spent 10 chat tokens; 490 left.")
    await says(page.get_by_role("button", name="Reserve"), "Held 10 chat tokens until")
    await says(page.get_by_role("button", name="Commit 10 chat tokens"), "Spent the 10")
    await says(page.get_by_role("button", name="Reserve"), "Held 10 chat tokens until")
    await says(page.get_by_role("button", name="Release 10 chat tokens"), "Released the 10")
    await expect(amount(page)).to_have_text("480", timeout=WAIT_MS)
    await says(page.get_by_role("button", name="Subscribe to Pro monthly"), "renews every month")
    await says(page.get_by_role("button", name="Cancel: pro plan"), "will not renew")
    await says(page.get_by_role("button", name="Resume: pro plan"), "renews again")
    await says(page.get_by_role("button", name="End now: pro plan"), "has ended")

    # A refusal replaces the notice, in words; the next success replaces the refusal.
    await page.get_by_label("Tokens", exact=True).fill("0")
    await page.get_by_role("button", name="Consume").click()
    problem = page.locator("#problem")
    await expect(problem.locator(".sentence")).to_have_text(
        "That was not accepted. Check the number of tokens: a whole number above 0."
    )
    await expect(notice).to_be_hidden()
    await page.get_by_label("Tokens", exact=True).fill("1")
    await says(page.get_by_role("button", name="Consume"), "Spent 1 chat token; 479 left.")
    await expect(problem).to_be_hidden()

    # The ledger's pages: eleven movements and more make a second page.
    for n in range(8):
        await Api(http, f"{stocked}/graphql").data(
            CONSUME,
            {"input": {"offerGroup": "chat", "tokens": 1, "idempotencyKey": f"k{n}"}},
            as_=token("demo-1"),
        )
    older = page.get_by_role("button", name="Older")
    await expect(older).to_be_enabled(timeout=WAIT_MS)
    await older.click()
    await expect(page.locator("#ledger-page")).to_have_text("page 2")
    await page.get_by_role("button", name="Newer").click()
    await expect(page.locator("#ledger-page")).to_have_text("page 1")

    # Switching user shows that user's (empty) wallet.
    await page.get_by_label("Demo user").select_option("demo-2")
    await expect(page.locator("#balances")).to_contain_text("No tokens yet", timeout=WAIT_MS)

    # A notice clears by itself after a while.
    await expect(notice).to_be_hidden(timeout=WAIT_MS)


@pytest.mark.timeout(60)
async def test_ending_a_plan_asks_first_and_no_changes_nothing(
    browser: Browser, stocked: str, http: aiohttp.ClientSession
) -> None:
    page = await open_page(browser, stocked)
    await page.get_by_role("button", name="Subscribe to Pro monthly").click()
    plan = page.locator(".plan")
    await expect(plan).to_have_attribute("data-status", "ACTIVE", timeout=WAIT_MS)
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.post_data or ""))
    asked = answer_dialogs(page, accept=False)

    for name in ("End now: pro plan", "Cancel: pro plan"):
        await page.get_by_role("button", name=name).click()
    assert [question.split("?")[0] for question in asked] == [
        "End the pro plan now",
        "Cancel the pro plan",
    ]
    assert all("cancelPlan" not in body for body in sent), sent
    wallet = await Api(http, f"{stocked}/graphql").data(PLANS, as_=token("demo-1"))
    assert wallet["wallet"]["plans"] == [{"status": "ACTIVE", "cancelAtPeriodEnd": False}]
    await expect(plan).to_contain_text("pro plan: active, renews")

    # Ending is styled apart from buying.
    end_now = page.get_by_role("button", name="End now: pro plan")
    buy = page.get_by_role("button", name="Buy Pro monthly")
    style = "(e) => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
    assert await end_now.evaluate(style) != await buy.evaluate(style)
    await expect(end_now).to_have_class("danger")
    await expect(buy).to_have_class("primary")


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
