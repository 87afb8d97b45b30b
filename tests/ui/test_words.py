"""What the pool window says, in headless Chromium on a real engine: accounts at their limit say until
when, a passed reset says "resetting, checking…" (no invented 0 %), the Activity page speaks in
words, long addresses show whole on hover, a signed-out account offers Re-login first, countdowns
are in minutes, the window without its key says to open it from the tray, "Refresh quota" asks for
fresh numbers, and a change made by the CLI shows within two seconds of the page's own time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.apphost import running_engine
from tests.fakes.seed import add_account, put_usage
from tests.support.proxykit import Pool
from tests.support.uikit import LONG_EMAIL, NARROW, WIDE, morning, people
from tests.ui.test_ui import WINDOW, open_page
from tray.models import AccountState

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_engine() as running:
        yield running


def hhmm(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M")


def test_an_account_at_its_limit_says_when_it_resets(browser: Any, pool: Pool) -> None:
    accounts = people(pool.engine.store, pool.upstream)
    team = next(a for a in accounts if a.email == "team-seat@example.com")
    page = open_page(browser, pool.engine)
    row = page.locator(".acct", has_text="team-seat")
    row.wait_for()
    assert row.locator("[data-role='status']").inner_text().lower() == "limit reached"
    reason = row.locator("[data-role='reason']").inner_text()
    match = re.fullmatch(r"usage limit reached, resets (\d\d:\d\d)", reason)
    assert match, reason
    until = pool.engine.store.usage(team.id)
    assert until is not None  # the 5-hour window at 100 % resets in 38 min
    assert match.group(1) in (hhmm(until.updated_at + 38 * 60), hhmm(until.updated_at + 38 * 60 + 60))
    assert "HTTP 429" not in page.inner_text("#accounts")
    page.context.close()


def test_an_exhausted_pool_says_until_when(browser: Any, pool: Pool) -> None:
    store = pool.engine.store
    first = add_account(store, "one@example.com")
    second = add_account(store, "two@example.com")
    put_usage(store, first, 100, 40, short_reset_s=23 * 60 + 20, allowed=False, limit_reached=True)
    put_usage(store, second, 100, 70, short_reset_s=80 * 60, allowed=False, limit_reached=True)
    page = open_page(browser, pool.engine)
    page.wait_for_selector("#health[data-state='exhausted']")
    text = page.inner_text("#health-text")
    back = hhmm(time.time() + 23 * 60 + 20)
    assert re.fullmatch(rf"Pool exhausted until {back} \(in 2[34] min\)", text), text
    page.context.close()


def test_after_a_reset_without_traffic_it_says_resetting_not_zero(browser: Any, pool: Pool) -> None:
    store = pool.engine.store
    idle = add_account(store, "idle@example.com")  # not known upstream: its fetch cannot succeed
    put_usage(store, idle, 96, 50, short_reset_s=5 * 60, age_s=10 * 60)  # the 5-hour reset was 5 min ago
    for size in (WIDE, NARROW):
        page = open_page(browser, pool.engine, size=size)
        short = page.locator(".acct", has_text="idle@").locator("[data-window='5h']")
        short.wait_for()
        assert short.inner_text().endswith("resetting, checking…")
        assert "0% used" not in short.inner_text()
        assert short.locator(".bar > span").count() == 0  # no bar drawn for a number nobody knows
        weekly = page.locator(".acct", has_text="idle@").locator("[data-window='weekly']")
        assert weekly.inner_text().startswith("Weekly") and "50% used" in weekly.inner_text()
        page.context.close()


def test_activity_speaks_in_words(browser: Any, pool: Pool) -> None:
    accounts = people(pool.engine.store, pool.upstream)
    morning(pool.engine.store, accounts)
    for size in (WIDE, NARROW):
        page = open_page(browser, pool.engine, size=size, hash_page="activity")
        page.wait_for_function("document.querySelectorAll('tr.decision').length === 5")
        rows = page.locator("tr.decision")
        texts = [rows.nth(i).locator("td.c-reason").inner_text() for i in range(5)]
        assert texts[1].startswith("Kept on the same account for the session's prompt cache; "
                                   "the client went away midway")
        assert texts[2].startswith("Moved on after a usage limit on team-seat@example.com")
        assert texts[3].startswith("Kept on the same account for the session's prompt cache")
        assert texts[4].startswith("The account with the most quota to spend")
        assert texts[0].startswith("Started the account's idle weekly quota window")
        # the proxy's own term stays on hover
        term = rows.nth(2).locator("td.c-reason").get_attribute("title")
        assert term.startswith("failover after usage limit")
        # fast mode: on or off, and why on hover
        fast = rows.nth(2).locator("td.c-fast")
        assert fast.get_attribute("data-fast") == "off"
        assert fast.locator(".badge").inner_text().lower() == "off"
        assert fast.get_attribute("title") == "less than 3 % left in the 5h window"
        on = rows.nth(4).locator("td.c-fast")
        assert on.get_attribute("data-fast") == "on"
        assert on.get_attribute("title").startswith("the account has quota to spare: 4.2 points ahead")
        # scores: what they mean, on each chip and on the column
        chip = rows.nth(4).locator(".chip").nth(1)
        assert "higher goes first" in chip.get_attribute("title")
        # emails: cut short with the full address on hover; the chosen account's chip whole
        account = rows.nth(0).locator("td.c-account .ellipsis")
        assert account.get_attribute("title") == LONG_EMAIL
        assert account.evaluate("e => e.scrollWidth > e.clientWidth")  # ellipsised
        chosen = rows.nth(0).locator(".chip.chosen")
        assert chosen.locator(".chip-name").inner_text() == LONG_EMAIL
        assert chosen.evaluate("c => c.scrollWidth <= c.clientWidth + 1")
        box, cell = chosen.bounding_box(), rows.nth(0).locator("td.c-scores").bounding_box()
        assert box is not None and cell is not None
        assert box["x"] + box["width"] <= cell["x"] + cell["width"] + 1
        assert page.errors == []
        page.context.close()


def test_long_addresses_show_whole_on_hover_and_a_signed_out_account_offers_relogin(
        browser: Any, pool: Pool) -> None:
    people(pool.engine.store, pool.upstream)
    page = open_page(browser, pool.engine, size=NARROW)
    long = page.locator(".acct", has_text=LONG_EMAIL[:20])
    long.wait_for()
    name = long.locator(".name .text")
    assert name.get_attribute("title") == LONG_EMAIL  # not "Click to rename"
    assert name.evaluate("e => e.scrollWidth > e.clientWidth")  # ellipsised at 420 px
    spare = page.locator(".acct", has_text="spare@")
    assert spare.locator(".row-actions button").first.inner_text() == "Re-login"
    assert spare.locator("button", has_text="Disable").count() == 0
    assert spare.locator("button", has_text="Make primary").count() == 0
    assert long.locator("button", has_text="Make primary").count() == 1
    long.locator("button.link", has_text="Rename").click()  # renaming is still one click away
    page.locator(".acct .name input").wait_for()
    page.context.close()


def test_countdowns_are_in_minutes(browser: Any, pool: Pool) -> None:
    people(pool.engine.store, pool.upstream)
    page = open_page(browser, pool.engine, size=WIDE)
    page.wait_for_selector(".acct [data-reset]")
    countdowns = page.locator("[data-reset]").all_inner_texts()
    assert countdowns and all(re.fullmatch(r"resets in (\d+ min|\d+ h \d\d min|\d+ d( \d+ h)?)", c)
                              for c in countdowns), countdowns
    assert not re.search(r"\d+m \d+s|\d+s\b", page.inner_text("#accounts"))
    page.context.close()


def test_without_its_key_the_window_says_to_open_it_from_the_tray(browser: Any, pool: Pool) -> None:
    context = browser.new_context(viewport=WINDOW)
    page = context.new_page()
    page.goto(pool.engine.url + "/ui/")
    page.wait_for_selector("#health[data-state='signed-out']")
    assert page.inner_text("#health-text") == "Open it from the tray"
    assert page.inner_text("#banner").startswith("Open it from the tray (the link needs its key).")
    assert "Offline" not in page.inner_text("body")
    page.wait_for_load_state("networkidle")  # the page's first calls have answered (401)
    assert page.locator("#toasts .toast").count() == 0  # the banner says it once, no toast repeats it
    assert not page.locator("#accounts").is_visible()  # no empty list frame under the banner
    context.close()


def test_refresh_quota_fetches_fresh_numbers(browser: Any, pool_home: Path) -> None:
    with running_engine(["a"]) as pool:
        store, account = pool.engine.store, pool.accounts["a"]
        put_usage(store, account, 12, 10)  # fresh when the window opens: nothing to fetch then
        page = open_page(browser, pool.engine)
        bar = page.locator(".acct").first.locator("[data-window='5h'] .bar-text")
        bar.wait_for()
        assert bar.inner_text().startswith("12% used")
        pool.upstream.set_usage("a", primary_used=64)  # meanwhile the account was used elsewhere
        put_usage(store, account, 12, 10, age_s=2 * 60)  # and the window's number is two minutes old
        page.click("#refresh-quota")
        page.wait_for_function("document.querySelector(\".acct [data-window='5h'] .bar-text\")"
                               ".textContent.startsWith('64% used')")
        page.context.close()


def test_a_change_made_by_the_cli_shows_within_two_seconds(browser: Any, pool: Pool) -> None:
    people(pool.engine.store, pool.upstream)
    context = browser.new_context(viewport=WINDOW, bypass_csp=True)
    context.clock.install()
    page = context.new_page()
    page.goto(pool.engine.ui_url)
    page.locator(".acct[data-status='ready']", has_text="Dana (work)").wait_for()
    # From here the page's timers run only as far as the test moves them.
    page.clock.pause_at(datetime.fromtimestamp(page.evaluate("Date.now()") / 1000 + 0.05))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tray", "disable", "dana@example.com"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    page.clock.run_for(2000)  # two seconds of the page's time, however long the machine takes
    page.locator(".acct[data-status='disabled']", has_text="Dana (work)").wait_for()
    assert pool.engine.store.accounts()[0].state is AccountState.DISABLED
    context.close()
