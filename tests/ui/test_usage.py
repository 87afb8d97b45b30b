"""The Usage page and the Accounts page's quota states in headless Chromium, served by a real engine
over loopback: the chart (uPlot) of the pool and each account with resets and the forecast, light and
dark, at 1280 and 420 px; a quota being fetched (spinner) and a fetch that failed (what failed).
Set CODEX_POOL_SCREENSHOTS=1 to copy the screenshots to assets/screenshots/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.apphost import running_engine
from tests.fakes.history import Session, working_history
from tests.fakes.seed import add_account, put_usage
from tests.fakes.upstream_app import usage_knobs
from tests.support.proxykit import Pool
from tests.support.proxykit import add_account as add_fake_account
from tests.ui.test_ui import open_page, shoot
from tray.forecast import outlook
from tray.store.accounts import Store

pytestmark = pytest.mark.browser

WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 420, "height": 900}
# Pixels of a canvas that are not the empty background: the chart actually drew lines.
INKED = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_engine() as running:
        yield running


def busy_day(store: Store) -> None:
    """Three accounts over the last day; the pool's 5-hour quota runs out before its next reset."""
    now = time.time()
    dana = add_account(store, "dana@example.com", plan="pro")
    store.set_label(dana.id, "Dana (work)")
    side = add_account(store, "side.project@example.com", plan="plus")
    team = add_account(store, "team-seat@example.com", plan="team")
    working_history(store, dana, now, [Session(26, 22, 18), Session(9, 6.5, 22), Session(2.2, 0, 30)],
                    weekly_used=61)
    working_history(store, side, now, [Session(20, 17, 25), Session(3.2, 0, 26)], weekly_used=48)
    working_history(store, team, now, [Session(12, 9, 30), Session(1.5, 0, 45)], weekly_used=72)
    for account in (dana, side, team):
        put_usage(store, account, 10, 10)  # a fresh quota cache: the window has nothing to fetch


def test_usage_page_charts_the_pool_and_each_account(browser: Any, pool: Pool, tmp_path: Path) -> None:
    store = pool.engine.store
    busy_day(store)
    expected = outlook.forecasts(store, time.time())["5h"]
    assert expected.early  # the seeded day runs out before its reset
    for scheme in ("light", "dark"):
        for size, tag in ((WIDE, ""), (NARROW, "-narrow")):
            page = open_page(browser, pool.engine, scheme, size, hash_page="usage")
            page.wait_for_selector(".usage-window[data-window='5h'] .uplot canvas")
            short = page.locator(".usage-window[data-window='5h']")
            assert page.locator(".usage-window").count() == 2
            sentence = short.locator(".forecast").inner_text()
            assert sentence.startswith("At this pace the pool's 5-hour quota runs out at ")
            assert "before the next reset at" in sentence
            assert short.locator(".forecast").get_attribute("data-early") == "true"
            assert short.locator(".chart").get_attribute("data-series") == "4"  # the pool + 3 accounts
            legend = short.locator(".u-legend").inner_text()
            for name in ("Pool", "Dana (work)", "side.project@example.com", "team-seat@example.com"):
                assert name in legend
            assert short.locator(".uplot canvas").evaluate(INKED) > 2000
            assert "runs out" in short.locator(".chart-key").inner_text()
            overflow = page.evaluate("(m => m.scrollWidth - m.clientWidth)(document.querySelector('main'))")
            assert overflow <= 0
            width = short.locator(".uplot canvas").evaluate("c => c.getBoundingClientRect().width")
            assert width <= size["width"] - 40
            shoot(page, f"usage{tag}-{scheme}", tmp_path, keep=False)  # the set: test_ui_screens
            assert page.errors == []
            page.context.close()


def test_the_range_toggle_and_the_content_security_policy(browser: Any, pool: Pool) -> None:
    busy_day(pool.engine.store)
    page = open_page(browser, pool.engine, size=WIDE, hash_page="usage", csp=True)
    page.wait_for_selector("#usage[data-ready='24'] .uplot canvas")
    page.click("button[data-hours='168']")
    page.wait_for_selector("#usage[data-ready='168'] .uplot canvas")
    assert page.locator("button[data-hours='168']").get_attribute("aria-pressed") == "true"
    assert page.errors == []
    page.context.close()


def test_an_empty_history_says_where_readings_come_from(browser: Any, pool: Pool) -> None:
    page = open_page(browser, pool.engine, hash_page="usage")
    page.wait_for_selector("#usage .empty")
    assert "No quota readings yet" in page.inner_text("#usage")
    page.context.close()


def test_accounts_page_spins_while_quota_is_fetched_then_says_what_failed(
        browser: Any, pool_home: Path, tmp_path: Path) -> None:
    with running_engine(["a"]) as pool:
        knobs = usage_knobs(pool.upstream)
        deadline = time.monotonic() + 15
        while pool.engine.store.usage(pool.accounts["a"].id) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        knobs.delay = 60.0  # the usage endpoint hangs ...
        add_fake_account(pool.engine.store, pool.auth, pool.upstream, "c")
        for scheme in ("light", "dark"):
            page = open_page(browser, pool.engine, scheme)
            row = page.locator(".acct", has_text="c@example.com")
            fetching = row.locator("[data-quota='fetching']")
            fetching.wait_for()
            assert fetching.inner_text() == "Quota not known yet: fetching it now…"
            assert fetching.locator(".spinner").is_visible()
            shoot(page, f"accounts-fetching-{scheme}", tmp_path)
            page.context.close()
        page = open_page(browser, pool.engine)
        knobs.status, knobs.delay = 503, 0.0  # ... then answers 503
        failed = page.locator(".acct", has_text="c@example.com").locator("[data-quota='error']")
        failed.wait_for(timeout=15000)
        assert failed.inner_text() == ("Quota not known: Usage request for c@example.com answered HTTP 503;"
                                       " trying again in 10 s")
        assert page.locator(".acct", has_text="a@example.com").locator("[data-window='5h']").count() == 1
        assert page.errors == [] or all("503" in e for e in page.errors)
        page.context.close()
