"""The pool window's web UI in headless Debian Chromium (Playwright, no browser download), served by a
real engine over http://127.0.0.1. Every page is driven the way a user would, and each page is
screenshotted in light and dark; set CODEX_POOL_SCREENSHOTS=1 to copy them to assets/screenshots/."""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.apphost import running_engine
from tests.fakes.auth_server import FakeUser
from tests.fakes.seed import add_account, cool_down, put_usage, record
from tests.support.proxykit import Pool
from tray import config
from tray.models import Account, AccountState
from tray.store.accounts import Store

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "assets" / "screenshots"
WINDOW = {"width": 900, "height": 600}


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_engine() as running:
        yield running


@pytest.fixture
def engine(pool: Pool) -> Any:
    return pool.engine


def open_page(browser: Any, engine: Any, scheme: str = "light", size: dict[str, int] | None = None,
              hash_page: str = "", csp: bool = False) -> Any:
    # Playwright's wait_for_function evaluates strings, which the page's CSP forbids; one test below
    # keeps the CSP on and checks that every page runs under it.
    context = browser.new_context(viewport=size or WINDOW, color_scheme=scheme, bypass_csp=not csp)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    page.goto(engine.ui_url)
    page.wait_for_selector("#health[data-state]:not([data-state='unknown'])")
    if hash_page:
        page.evaluate(f"location.hash = '{hash_page}'")
    return page


def shoot(page: Any, name: str, tmp_path: Path, keep: bool = True) -> None:
    """Screenshot the window; keep it for the README when asked to (``keep``: this one is part of
    the set in assets/screenshots/); never a blank image."""
    page.wait_for_timeout(150)  # let the last render and fonts settle before capturing
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out))
    assert out.stat().st_size > 8000, f"{name} looks blank"
    if keep and os.environ.get("CODEX_POOL_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, SHOTS / out.name)


def seed_pool(store: Store) -> list[Account]:
    work = add_account(store, "dana@example.com", plan="pro")
    store.set_label(work.id, "Dana (work)")
    side = add_account(store, "side.project@example.com", plan="plus")
    team = add_account(store, "team-seat@example.com", plan="team")
    spare = add_account(store, "spare@example.com", plan="plus")
    put_usage(store, work, 38, 61)
    put_usage(store, side, 93, 48, short_reset_s=25 * 60 + 30)
    put_usage(store, team, 100, 82)
    cool_down(store, team, 1500)
    put_usage(store, spare, 12, 30, age_s=40 * 60)
    store.set_state(spare.id, AccountState.NEEDS_LOGIN, "Sign-in expired (refresh_token_reused)")
    return store.accounts()


def row(page: Any, name: str) -> Any:
    return page.locator(".acct", has_text=name)


# ---- accounts --------------------------------------------------------------------------------------


def test_accounts_page_shows_quota_bars_and_states(browser: Any, engine: Any, tmp_path: Path) -> None:
    seed_pool(engine.store)
    for scheme in ("light", "dark"):
        page = open_page(browser, engine, scheme)
        page.wait_for_selector(".acct")
        assert page.locator(".acct").count() == 4
        work = row(page, "Dana (work)")
        assert work.locator(".badge.primary").inner_text().lower() == "primary"
        assert work.locator("[data-window='5h'] .bar-text").inner_text().startswith("38% used")
        assert work.locator("[data-window='weekly'] .bar-text").inner_text().startswith("61% used")
        team = row(page, "team-seat")
        assert team.get_attribute("data-status") == "exhausted"  # its 5-hour window is at 100 %
        assert team.locator("[data-role='reason']").inner_text().startswith("usage limit reached, resets ")
        assert work.locator("[data-window='5h'] [data-reset]").inner_text().startswith("resets in 2 h")
        # Countdowns are in minutes: nothing ticks by the second above a minute.
        side = row(page, "side.project").locator("[data-window='5h'] [data-reset]").inner_text()
        assert side in ("resets in 26 min", "resets in 25 min"), side
        assert page.locator("#health").get_attribute("data-state") == "degraded"
        assert page.errors == []
        page.context.close()


def test_accounts_fit_the_window_size(browser: Any, engine: Any) -> None:
    seed_pool(engine.store)
    page = open_page(browser, engine, size={"width": 800, "height": 500})
    page.wait_for_selector(".acct")
    overflow = page.evaluate("(m => m.scrollWidth - m.clientWidth)(document.querySelector('main'))")
    assert overflow <= 0
    page.context.close()


def test_empty_pool_points_to_add_account(browser: Any, engine: Any, tmp_path: Path) -> None:
    page = open_page(browser, engine)
    page.wait_for_selector(".empty")
    assert "No accounts yet" in page.inner_text(".empty")
    shoot(page, "accounts-empty-light", tmp_path)
    page.click(".empty a:has-text('Add account')")
    page.wait_for_selector("#start-browser")
    page.context.close()


def test_relabel_reorder_enable_disable_and_primary(browser: Any, engine: Any) -> None:
    seed_pool(engine.store)
    page = open_page(browser, engine)
    page.wait_for_selector(".acct")
    # relabel inline
    row(page, "side.project").locator(".name .text").click()
    page.fill(".name input", "Side")
    page.keyboard.press("Enter")
    row(page, "Side").wait_for()
    assert engine.store.accounts()[1].label == "Side"
    # move down, then up
    row(page, "Dana (work)").locator("button[aria-label='Move down']").click()
    page.wait_for_function("document.querySelector('.acct .name').textContent === 'Side'")
    assert [a.name for a in engine.store.accounts()][:2] == ["Side", "Dana (work)"]
    row(page, "Dana (work)").locator("button[aria-label='Move up']").click()
    page.wait_for_function("document.querySelector('.acct .name').textContent === 'Dana (work)'")
    # disable and enable
    row(page, "Side").locator("button", has_text="Disable").click()
    page.locator(".acct[data-status='disabled']", has_text="Side").wait_for()
    assert engine.store.accounts()[1].state is AccountState.DISABLED
    row(page, "Side").locator("button", has_text="Enable").click()
    page.locator(".acct[data-status='low']", has_text="Side").wait_for()
    assert engine.store.accounts()[1].state is AccountState.ENABLED
    # make primary
    row(page, "Side").locator("button", has_text="Make primary").click()
    page.wait_for_function("document.querySelector('.acct .name').textContent === 'Side'")
    assert engine.store.accounts()[0].primary and engine.store.accounts()[0].label == "Side"
    assert page.errors == []
    page.context.close()


def test_remove_asks_first(browser: Any, engine: Any, tmp_path: Path) -> None:
    seed_pool(engine.store)
    page = open_page(browser, engine)
    page.wait_for_selector(".acct")
    row(page, "spare@").locator("button", has_text="Remove").click()
    page.wait_for_selector("dialog#confirm[open]")
    assert "spare@example.com" in page.inner_text("#confirm-title")
    shoot(page, "remove-confirm-light", tmp_path)
    page.click("#confirm button[value='cancel']")
    assert len(engine.store.accounts()) == 4
    row(page, "spare@").locator("button", has_text="Remove").click()
    page.click("#confirm-ok")
    page.wait_for_function("document.querySelectorAll('.acct').length === 3")
    assert [a.email for a in engine.store.accounts()].count("spare@example.com") == 0
    page.context.close()


# ---- settings ----------------------------------------------------------------------------------


def test_settings_validation_and_save(browser: Any, engine: Any, tmp_path: Path) -> None:
    page = open_page(browser, engine, hash_page="settings")
    page.wait_for_selector("#f-sticky-mode")
    for key in config.KEYS:  # every documented key has its own labelled field
        field = page.locator(f"[id='f-{key}']")
        assert field.count() == 1, key
        assert page.locator(f"label[for='f-{key}'], label:has([id='f-{key}'])").count() == 1, key
    before = engine.paths.config_file.read_text()
    for key in ("upstream-url", "auth-url"):  # where tokens go changes only in config.toml
        assert page.get_attribute(f"#f-{key}", "readonly") is not None, key
        assert "config.toml" in page.locator(".field", has=page.locator(f"#f-{key}")).inner_text()
    # client-side: a port out of range is caught before anything is sent
    page.fill("#f-port", "70000")
    assert page.locator("#err-port").inner_text() != ""
    page.click("#save")
    assert engine.paths.config_file.read_text() == before
    page.fill("#f-port", "0")
    # server-side: a non-loopback host is refused without allow-remote, shown beside the field
    page.fill("#f-host", "10.1.2.3")
    page.click("#save")
    page.wait_for_selector("#err-host:not([hidden])")
    assert "loopback" in page.inner_text("#err-host")
    assert engine.paths.config_file.read_text() == before
    shoot(page, "settings-error-light", tmp_path)
    # a valid save is written and applied without restart
    page.fill("#f-host", "127.0.0.1")
    page.select_option("#f-sticky-mode", "disabled")
    page.fill("#f-fast-mode-bias", "0.03")
    page.check("#f-notifications\\.quota-low")
    page.click("#save")
    page.wait_for_selector(".toast:has-text('Settings saved')")
    saved = tomllib.loads(engine.paths.config_file.read_text())
    assert saved["sticky-mode"] == "disabled" and saved["fast-mode-bias"] == 0.03
    assert saved["notifications"]["quota-low"] is True
    assert saved["upstream-url"] == tomllib.loads(before)["upstream-url"]
    assert engine.config.sticky_mode == "disabled"
    page.context.close()
    dark = open_page(browser, engine, "dark", hash_page="settings")
    dark.wait_for_selector("#f-sticky-mode")
    assert dark.input_value("#f-sticky-mode") == "disabled"
    dark.context.close()


# ---- activity ----------------------------------------------------------------------------------


def test_activity_rows_after_proxied_requests(browser: Any, pool_home: Path, tmp_path: Path) -> None:
    with running_engine(["a", "b"]) as pool:
        page = open_page(browser, pool.engine, hash_page="activity")
        page.wait_for_selector("#activity-rows td")
        assert "No requests yet" in page.inner_text("#activity-rows")
        for _ in range(3):
            assert pool.post().status_code == 200
        page.wait_for_function("document.querySelectorAll('#activity-rows tr.decision').length === 3")
        first = page.locator("tr.decision").first
        assert "200" in first.inner_text() and "@example.com" in first.inner_text()
        assert first.locator(".chip.chosen").count() == 1
        page.context.close()


def test_activity_screenshots(browser: Any, engine: Any, tmp_path: Path) -> None:
    accounts = seed_pool(engine.store)
    record(engine.store, accounts[0], accounts[1:3])
    record(engine.store, accounts[1], [accounts[0]], reason="sticky session kept")
    record(engine.store, accounts[0], accounts[1:2], reason=f"failover after 429 on {accounts[2].name}")
    for scheme in ("light", "dark"):
        page = open_page(browser, engine, scheme, hash_page="activity")
        page.wait_for_function("document.querySelectorAll('#activity-rows tr.decision').length === 3")
        assert "Moved on after a rate limit (HTTP 429) on" in page.locator("tr.decision").first.inner_text()
        page.context.close()


# ---- add account -------------------------------------------------------------------------------


def test_device_code_sign_in(browser: Any, pool: Pool, tmp_path: Path) -> None:
    pool.auth.user = FakeUser("acc-dev", "user-dev", "dev@example.com", "pro")
    for scheme in ("light", "dark"):
        page = open_page(browser, pool.engine, scheme, hash_page="add")
        page.click("#start-device")
        page.wait_for_selector("#user-code")
        code = page.inner_text("#user-code")
        assert code and page.get_attribute("#verification-url", "href").startswith("http")
        assert page.locator(".waiting").is_visible()
        shoot(page, f"add-device-{scheme}", tmp_path)
        if scheme == "light":
            page.click("button:has-text('Cancel')")
            page.wait_for_selector("#login-result.result-bad")
            assert "cancel" in page.inner_text("#login-result").lower()
        else:
            pool.auth.approve(code)
            page.wait_for_selector("#login-result.result-ok")
            assert page.inner_text("#login-result") == "Signed in as dev@example.com: added to the pool."
            assert "null" not in page.inner_text("#login-flow")  # no stray null under the result
        page.context.close()
    assert [a.email for a in pool.engine.store.accounts()] == ["dev@example.com"]


def test_window_can_open_straight_into_a_device_sign_in(browser: Any, pool: Pool) -> None:
    context = browser.new_context(viewport=WINDOW, bypass_csp=True)
    page = context.new_page()
    page.goto(pool.engine.ui_url + "&page=add&start=device")
    page.wait_for_selector("#user-code")
    assert page.evaluate("location.hash") == "#add"
    assert page.locator("#nav a[aria-current='page']").inner_text() == "Add account"
    page.click("button:has-text('Cancel')")
    page.goto(pool.engine.ui_url + "&page=settings")  # the tray re-opens an open window: a hash change
    page.wait_for_selector("#f-port")
    assert page.evaluate("location.hash") == "#settings"
    context.close()


def test_browser_sign_in(browser: Any, pool: Pool, tmp_path: Path) -> None:
    pool.auth.user = FakeUser("acc-web", "user-web", "web@example.com", "plus")
    page = open_page(browser, pool.engine, hash_page="add")
    page.click("#start-browser")
    page.wait_for_selector("#authorize-url")
    url = page.input_value("#authorize-url")
    assert "code_challenge=" in url
    shoot(page, "add-browser-light", tmp_path)
    signin = page.context.new_page()  # the user's browser tab: the fake auth server signs in at once
    signin.goto(url)
    assert "signed in" in signin.inner_text("body").lower()
    page.wait_for_selector("#login-result.result-ok")
    assert "web@example.com" in page.inner_text("#login-result")
    page.click("a:has-text('See accounts')")
    row(page, "web@example.com").wait_for()
    page.context.close()


def test_relogin_from_the_accounts_page(browser: Any, pool: Pool) -> None:
    pool.auth.user = FakeUser("acc-spare", "user-spare", "spare@example.com", "plus")
    seed_pool(pool.engine.store)
    page = open_page(browser, pool.engine)
    row(page, "spare@").locator("button", has_text="Re-login").click()
    page.click("#start-device")
    pool.auth.approve(page.inner_text("#user-code"))
    page.wait_for_selector("#login-result.result-ok")
    page.click("a:has-text('See accounts')")
    page.locator(".acct[data-status='ready']", has_text="spare@").wait_for()
    assert len(pool.engine.store.accounts()) == 4
    page.context.close()


# ---- connect clients -------------------------------------------------------------------------


def test_connect_clients_snippets_apply_undo(browser: Any, engine: Any, tmp_path: Path,
                                             isolated_home: Path) -> None:
    page = open_page(browser, engine, hash_page="connect")
    page.wait_for_selector("#snippet-codex")
    assert f"{engine.url}/backend-api/codex" in page.inner_text("#snippet-codex")
    assert f"{engine.url}/v1" in page.inner_text("#snippet-opencode")
    assert engine.api_key not in page.inner_text("#local-key")
    shoot(page, "connect-light", tmp_path)
    card = page.locator("[data-client='codex']")
    card.locator("button", has_text="Apply").click()
    card.locator(".badge", has_text="Connected").wait_for()
    codex_file = isolated_home / ".codex" / "config.toml"
    assert "codex-pool" in codex_file.read_text()
    page.locator("[data-client='codex'] button", has_text="Undo").click()
    page.locator("[data-client='codex'] .badge", has_text="Not set up").wait_for()
    assert not codex_file.exists()
    page.context.close()
    dark = open_page(browser, engine, "dark", hash_page="connect")
    dark.wait_for_selector("#snippet-codex")
    shoot(dark, "connect-dark", tmp_path)
    dark.context.close()


def test_connect_page_gives_any_openai_compatible_tool_its_settings(browser: Any, engine: Any,
                                                                   tmp_path: Path) -> None:
    page = open_page(browser, engine, hash_page="connect")
    page.wait_for_selector("#snippet-generic")
    assert page.inner_text("#generic-base-url") == f"{engine.url}/v1"
    assert engine.api_key not in page.inner_text("#snippet-generic")
    assert engine.api_key not in page.inner_text("#generic-key")
    page.click("#show-key")
    shown = page.inner_text("#snippet-generic")
    assert shown == f"OPENAI_BASE_URL={engine.url}/v1\nOPENAI_API_KEY={engine.api_key}"
    page.click("#show-key")
    page.locator("[data-client='openai-compatible']").scroll_into_view_if_needed()
    shoot(page, "connect-generic-light", tmp_path)
    assert page.errors == []
    page.context.close()


def test_every_page_runs_under_the_content_security_policy(browser: Any, engine: Any) -> None:
    seed_pool(engine.store)
    page = open_page(browser, engine, csp=True)
    page.wait_for_selector(".acct .bar > span")
    for name, ready in (("add", "#start-device"), ("activity", "#activity-rows td"),
                        ("connect", "#snippet-codex"), ("settings", "#f-port"), ("accounts", ".acct")):
        page.evaluate(f"location.hash = '{name}'")
        page.wait_for_selector(ready)
    assert page.locator(".acct .bar > span").first.evaluate("el => el.style.width") == "38%"
    assert page.errors == []
    page.context.close()


def test_config_problems_are_shown_until_fixed(browser: Any, engine: Any) -> None:
    path = engine.paths.config_file
    path.write_text(path.read_text() + 'sticky-strength = "strong"\n')
    engine.reload_config()
    page = open_page(browser, engine)
    page.wait_for_selector("#banner.warn:not([hidden])")
    assert "sticky-strength" in page.inner_text("#banner")
    page.click("#banner a")
    page.wait_for_selector("#f-sticky-strength")
    page.fill("#f-sticky-strength", "1.5")
    page.click("#save")
    page.wait_for_selector(".toast:has-text('Settings saved')")
    page.wait_for_selector("#banner.warn[hidden]", state="attached")
    assert engine.config.sticky_strength == 1.5
    page.context.close()


def test_without_the_token_the_page_says_how_to_open_it(browser: Any, engine: Any) -> None:
    context = browser.new_context(viewport=WINDOW)
    page = context.new_page()
    page.goto(engine.url + "/ui/")
    page.wait_for_selector("#banner:not([hidden])")
    assert "tray menu" in page.inner_text("#banner")
    context.close()


def test_the_window_link_works_once_and_leaves_nothing_reusable(browser: Any, engine: Any,
                                                                 tmp_path: Path) -> None:
    seed_pool(engine.store)
    link = engine.ui_url
    context = browser.new_context(viewport=WINDOW)  # the page's own CSP stays on
    page = context.new_page()
    page.goto(link)
    page.wait_for_selector(".acct")
    assert "code=" not in page.url and page.url.endswith("/ui/#accounts")
    kept = page.evaluate("[JSON.stringify(sessionStorage), JSON.stringify(localStorage), document.cookie]")
    assert kept == ["{}", "{}", ""]  # nothing a session restore or another page could replay
    assert context.cookies() == []
    # The same link again (browser history, a copy in a chat, a squatter's page that read it): dead.
    later = browser.new_context(viewport=WINDOW).new_page()
    later.goto(link)
    later.wait_for_selector("#banner:not([hidden])")
    assert "expired or was used already" in later.inner_text("#banner")
    assert later.locator(".acct").count() == 0
    shoot(later, "window-link-used", tmp_path)
    later.context.close()
    # The tray shows the window again with a fresh code: the page keeps working on the new session.
    page.goto(engine.ui_url + "&page=settings")
    page.wait_for_selector("#f-port")
    assert page.url.endswith("/ui/#settings")
    # A reload loses the in-memory session: the page says how to get back in.
    page.reload()
    page.wait_for_selector("#banner:not([hidden])")
    assert "tray menu" in page.inner_text("#banner")
    context.close()
