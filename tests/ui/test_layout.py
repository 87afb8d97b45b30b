"""The pool window from 420 px up, in headless Chromium on a real engine: the navigation moves on top
when narrow (never a squeezed sidebar), tables become cards, the Activity page's reasons read as
lines of text, settings labels keep their hyphenated words whole, and toasts never cover a button."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.apphost import running_engine
from tests.fakes.seed import add_account
from tests.support.proxykit import Pool
from tests.support.uikit import NARROW, WIDE, covered_buttons, morning, overflow, people
from tests.ui.test_ui import open_page

pytestmark = pytest.mark.browser

PAGES = (("accounts", ".acct"), ("add", "#start-browser"), ("usage", "#usage"),
         ("activity", "tr.decision"), ("connect", "#snippet-codex"), ("settings", "#f-port"))


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_engine() as running:
        accounts = people(running.engine.store, running.upstream)
        morning(running.engine.store, accounts)
        yield running


@pytest.mark.parametrize("width", [420, 560, 720, 800])
def test_every_page_fits_and_the_navigation_stays_in_reach(browser: Any, pool: Pool, width: int) -> None:
    for scheme in ("light", "dark"):
        page = open_page(browser, pool.engine, scheme, {"width": width, "height": 800})
        for name, ready in PAGES:
            page.evaluate(f"location.hash = '{name}'")
            page.wait_for_selector(ready)
            assert overflow(page) <= 0, f"{name} at {width} px is wider than the window"
            for link in page.locator("#nav a").all():  # all six, whole and on screen
                box = link.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (name, width)
                assert link.evaluate("a => a.scrollWidth <= a.clientWidth")
        nav = page.locator("#nav").bounding_box()
        main = page.locator("main").bounding_box()
        assert nav is not None and main is not None
        if width <= 720:  # narrow: the navigation runs across the top, above the page
            assert nav["y"] + nav["height"] <= main["y"] + 1
            assert nav["width"] >= width - 40
            assert main["width"] >= width - 1
        else:  # wide: the sidebar beside the page, the page keeps most of the width
            assert nav["x"] + nav["width"] <= main["x"] + 1
            assert main["width"] >= width * 0.7
        assert page.errors == []
        page.context.close()


def test_narrow_activity_shows_each_request_as_a_card_with_readable_reasons(browser: Any, pool: Pool) -> None:
    page = open_page(browser, pool.engine, size=NARROW, hash_page="activity")
    page.wait_for_function("document.querySelectorAll('tr.decision').length === 5")
    assert not page.locator("table.activity thead").is_visible()  # no squeezed column headers
    card = page.locator("tr.decision").nth(2)
    reason = card.locator("td.c-reason")
    width = reason.evaluate("td => td.getBoundingClientRect().width")
    assert width >= 0.8 * card.evaluate("tr => tr.getBoundingClientRect().width")
    # A line of text, not a letter per line: a few lines at most for the longest reason.
    lines = reason.evaluate("td => { const r = document.createRange(); r.selectNodeContents(td.firstChild);"
                            " return r.getClientRects().length; }")
    assert lines <= 4, lines
    assert "Fast mode" in card.locator("td.c-fast").inner_text()  # each cell says what it is
    assert "Latency" in card.locator("td.c-latency").inner_text()
    page.context.close()


def test_wide_activity_table_gives_the_reason_room(browser: Any, pool: Pool) -> None:
    page = open_page(browser, pool.engine, size=WIDE, hash_page="activity")
    page.wait_for_function("document.querySelectorAll('tr.decision').length === 5")
    headers = page.locator("table.activity thead th")
    assert headers.all_inner_texts() == ["Time", "Account", "What happened", "Status", "Fast mode", "Latency",
                                         "Candidates"]
    reason = page.locator("tr.decision td.c-reason").first
    assert reason.evaluate("td => td.getBoundingClientRect().width") >= 260
    for th in headers.all():  # headers side by side, none over another
        assert th.evaluate("th => th.scrollWidth <= th.clientWidth + 1")
    page.context.close()


def test_settings_labels_do_not_break_at_their_hyphens(browser: Any, pool: Pool) -> None:
    for size in (NARROW, WIDE):
        page = open_page(browser, pool.engine, size=size, hash_page="settings")
        page.wait_for_selector("#f-fast-mode-bias")
        for key in page.locator(".field .key").all():  # "fast-mode-bias" stays on one line
            assert key.evaluate("k => k.getClientRects().length") == 1, key.inner_text()
        broken = page.evaluate("""[...document.querySelectorAll('.field > label, label.check')]
          .filter(label => {
            const text = [...label.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('');
            return /[A-Za-z]-[A-Za-z]/.test(text);  // an ordinary hyphen the browser may break at
          }).map(l => l.textContent)""")
        assert broken == []
        page.context.close()


def test_toasts_are_short_and_cover_no_button(browser: Any, pool: Pool) -> None:
    for n in range(6):  # a pool longer than the window: rows pass under wherever a toast shows
        add_account(pool.engine.store, f"seat-{n}@example.com", upstream=pool.upstream)
    for size in (NARROW, WIDE):
        page = open_page(browser, pool.engine, size=size)
        row = page.locator(".acct", has_text="Dana (work)")
        row.locator("button", has_text="Disable").click()
        toast = page.locator("#toasts .toast", has_text="Disabled")
        toast.wait_for()
        assert toast.inner_text() == "Disabled Dana (work)"
        box = toast.bounding_box()
        assert box is not None and box["height"] <= 40
        assert covered_buttons(page) == []
        toast.wait_for(state="detached")  # and it goes away by itself
        page.locator(".acct", has_text="Dana (work)").locator("button", has_text="Enable").click()
        # Saving settings: the note does not sit on the Save bar at the bottom of the window.
        page.evaluate("location.hash = 'settings'")
        page.wait_for_selector("#f-port")
        page.click("#save")
        saved = page.locator("#toasts .toast", has_text="Settings saved")
        saved.wait_for()
        assert saved.inner_text() == "Settings saved and applied"
        assert covered_buttons(page) == []
        page.context.close()
