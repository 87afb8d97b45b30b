"""Adding and re-signing accounts from the pool window, in headless Chromium on a real engine: "Sign in
with browser" opens the system browser (a recording ``$BROWSER`` command that a real subprocess
runs, and which signs in like a browser would), the result line says who was signed in with
nothing stray under it, a re-login names its account and says "Signed in again", and the Add page
shows no empty card while nothing runs."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.apphost import running_engine
from tests.fakes.auth_server import FakeUser
from tests.support.uikit import NARROW, WIDE, people
from tests.ui.test_ui import open_page
from tray.desktop import browser as system_browser
from tray.desktop.app import TrayApp
from tray.desktop.instance import Instance
from tray.engine import Engine
from tray.models import AccountState
from tray.paths import resolve_paths

pytestmark = pytest.mark.browser

# A browser as $BROWSER names it: it notes the address it was given, then follows it the way a
# browser does (the fake sign-in page signs in at once and sends it on to the callback).
RECORDER = """#!/bin/sh
printf '%s\\n' "$1" >> "$RECORD"
exec "$PYTHON" -c 'import sys, httpx
httpx.get(sys.argv[1], follow_redirects=True, trust_env=False, timeout=20)' "$1"
"""


def recording_browser(tmp_path: Path) -> tuple[dict[str, str], Path]:
    script, record = tmp_path / "browser.sh", tmp_path / "opened.txt"
    script.write_text(RECORDER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {"BROWSER": f"{script} %s", "DISPLAY": ":0", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "RECORD": str(record), "PYTHON": sys.executable}
    return env, record


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def test_sign_in_with_browser_opens_the_system_browser(browser: Any, pool_home: Path, tmp_path: Path) -> None:
    env, record = recording_browser(tmp_path)
    with running_engine(open_browser=system_browser.system_opener(env)) as pool:
        pool.auth.user = FakeUser("acc-web", "user-web", "web@example.com", "plus")
        page = open_page(browser, pool.engine, hash_page="add")
        page.click("#start-browser")  # and nothing else: no link to click, nothing to copy
        page.wait_for_selector("#login-result.result-ok")
        shown = page.input_value("#authorize-url") if page.locator("#authorize-url").count() else None
        opened = record.read_text().splitlines()
        assert len(opened) == 1 and "code_challenge=" in opened[0]
        assert shown in (None, opened[0])
        result = page.locator("#login-flow")
        assert page.inner_text("#login-result") == "Signed in as web@example.com: added to the pool."
        assert "null" not in result.inner_text()  # nothing stray under the result line
        assert result.locator(":scope > *").evaluate_all("els => els.map(e => e.tagName)") == ["P", "DIV"]
        assert [a.email for a in pool.engine.store.accounts()] == ["web@example.com"]
        page.context.close()


def test_the_engine_gives_its_login_service_the_browser_opener(pool_home: Path) -> None:
    opened: list[str] = []
    engine = Engine(resolve_paths(), port=0, import_primary=False, open_browser=opened.append,
                    login_options={"callback_port": 0})
    engine.start()
    try:
        assert engine.login is not None
        ticket = engine.submit(engine.login.start_browser()).result(10)
        assert opened == [ticket.url]
        engine.login.cancel(ticket.id)
    finally:
        engine.stop()


def test_the_tray_opens_the_system_browser_for_sign_ins(pool_home: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    paths = resolve_paths()
    app = TrayApp(paths, Instance(paths))
    try:
        assert app.engine.open_browser is not None
    finally:
        app.engine.store.close()
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform == "linux":  # no display, no browser: the window offers the link instead
        assert system_browser.system_opener() is None


def test_relogin_names_the_account_and_says_signed_in_again(browser: Any, pool_home: Path) -> None:
    with running_engine() as pool:
        pool.auth.user = FakeUser("acc-spare", "user-spare", "spare@example.com", "plus")
        spare = next(a for a in people(pool.engine.store, pool.upstream) if a.email == "spare@example.com")
        for size in (WIDE, NARROW):
            pool.engine.store.set_state(spare.id, AccountState.NEEDS_LOGIN, "Sign-in expired")
            page = open_page(browser, pool.engine, size=size)
            page.locator(".acct", has_text="spare@").locator("button", has_text="Re-login").click()
            page.wait_for_selector("#relogin-for strong")
            assert page.inner_text("#relogin-for").startswith("Sign in again to spare@example.com.")
            page.click("#start-device")
            pool.auth.approve(page.inner_text("#user-code"))
            page.wait_for_selector("#login-result.result-ok")
            assert page.inner_text("#login-result") == "Signed in again as spare@example.com."
            assert "added to the pool" not in page.inner_text("#login-flow")
            page.context.close()
        assert len(pool.engine.store.accounts()) == 4
        again = pool.engine.store.get(spare.id)
        assert again is not None and again.state.value == "enabled"


def test_the_add_page_shows_no_empty_card(browser: Any, pool_home: Path) -> None:
    with running_engine() as running:
        for size in (WIDE, NARROW):
            for scheme in ("light", "dark"):
                page = open_page(browser, running.engine, scheme, size, hash_page="add")
                page.wait_for_selector("#start-browser")
                empty = page.evaluate("""[...document.querySelectorAll('.panel, .card')]
                  .filter(p => p.offsetParent !== null && !p.textContent.trim()).length""")
                assert empty == 0
                assert not page.locator("#login-flow").is_visible()
                page.context.close()
