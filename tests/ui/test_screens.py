"""The screenshot set of the pool window (README and docs use it): accounts, add account (idle and
just signed in), activity, usage and settings, at 1280 and 420 px, light and dark, on one pool as a
user has it after a working day: four accounts (one with a 60-character email, one at its limit,
one signed out), a day of quota readings behind the Usage page, a morning of routing decisions.

Each screen is checked for what a user would call broken (content wider than the window, text
"null" or "undefined", an empty card, a script error) before it is kept. Set
CODEX_POOL_SCREENSHOTS=1 to copy them to assets/screenshots/ (1280 px: ``<page>-<scheme>.png``,
420 px: ``<page>-narrow-<scheme>.png``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.apphost import running_engine
from tests.fakes.auth_server import FakeUser
from tests.fakes.history import Session, working_history
from tests.fakes.seed import add_account, put_usage
from tests.support.proxykit import Pool
from tests.support.uikit import LONG_EMAIL, NARROW, morning, overflow
from tests.ui.test_ui import open_page, shoot
from tray.models import AccountState, UsageSample
from tray.store import Store

pytestmark = pytest.mark.browser

WIDE_SHOT = {"width": 1280, "height": 800}
SIZES = ((WIDE_SHOT, ""), (NARROW, "-narrow"))


def latest(samples: list[UsageSample], seconds: float) -> UsageSample:
    return [s for s in samples if s.window_seconds == seconds][-1]


def working_day(store: Store) -> None:
    """The accounts of :func:`tests.support.uikit.people`, each with the day behind its quota: the
    Accounts page's numbers are the Usage page's latest readings."""
    now = time.time()
    dana = add_account(store, "dana@example.com", plan="pro")
    store.set_label(dana.id, "Dana (work)")
    long = add_account(store, LONG_EMAIL, plan="plus")
    team = add_account(store, "team-seat@example.com", plan="team")
    spare = add_account(store, "spare@example.com", plan="plus")
    days = {
        dana.id: working_history(store, dana, now, [Session(26, 22, 18), Session(9, 6.5, 22),
                                                    Session(2.2, 0, 17)], weekly_used=61),
        long.id: working_history(store, long, now, [Session(20, 17, 25), Session(3.2, 0, 23)],
                                 weekly_used=48),
        team.id: working_history(store, team, now, [Session(12, 9, 30), Session(2.5, 0, 45)],
                                 weekly_used=82),
    }
    for account in (dana, long, team):
        short, weekly = latest(days[account.id], 18000.0), latest(days[account.id], 604800.0)
        full = short.used_percent >= 100
        put_usage(store, account, short.used_percent, weekly.used_percent,
                  short_reset_s=(short.reset_at or now + 3600) - now, allowed=not full, limit_reached=full)
    put_usage(store, spare, 12, 30, age_s=40 * 60)
    store.set_state(spare.id, AccountState.NEEDS_LOGIN, "Sign-in expired (refresh_token_reused)")
    morning(store, store.accounts())


def check(page: Any, name: str) -> None:
    assert overflow(page) <= 0, f"{name} is wider than the window"
    text = page.inner_text("body")
    assert "null" not in text and "undefined" not in text and "NaN" not in text, name
    empty = page.evaluate("""[...document.querySelectorAll('.panel, .card')]
      .filter(p => p.offsetParent !== null && !p.textContent.trim()).length""")
    assert empty == 0, f"{name} shows an empty card"
    assert page.errors == [], (name, page.errors)


def test_the_screenshot_set(browser: Any, pool_home: Path, tmp_path: Path) -> None:
    with running_engine() as pool:
        working_day(pool.engine.store)
        for size, tag in SIZES:
            for scheme in ("light", "dark"):
                shots(browser, pool, size, tag, scheme, tmp_path)


def shots(browser: Any, pool: Pool, size: dict[str, int], tag: str, scheme: str, tmp_path: Path) -> None:
    page = open_page(browser, pool.engine, scheme, size)
    for name, ready in (("accounts", ".acct [data-reset]"), ("activity", "tr.decision .chip"),
                        ("usage", "#usage[data-ready] .uplot canvas"), ("settings", "#f-port"),
                        ("add", "#start-browser")):
        page.evaluate(f"location.hash = '{name}'")
        page.wait_for_selector(ready)
        page.evaluate("document.querySelector('main').scrollTop = 0")
        check(page, f"{name}{tag}-{scheme}")
        shoot(page, f"{name}{tag}-{scheme}", tmp_path)
    # Just signed in: the Add page with its result.
    who = f"new.{scheme}{tag.replace('-', '.')}@example.com"
    pool.auth.user = FakeUser(f"acc-{who}", f"user-{who}", who, "plus")
    page.click("#start-device")
    page.wait_for_selector("#user-code")
    pool.auth.approve(page.inner_text("#user-code"))
    page.wait_for_selector("#login-result.result-ok")
    assert page.inner_text("#login-result") == f"Signed in as {who}: added to the pool."
    check(page, f"add-done{tag}-{scheme}")
    shoot(page, f"add-done{tag}-{scheme}", tmp_path)
    page.context.close()
    added = next(a for a in pool.engine.store.accounts() if a.email == who)
    pool.engine.store.remove(added.id)  # the next screens show the same four accounts
