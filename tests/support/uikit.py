"""Helpers for the web UI tests in headless Chromium: the browser, a pool as a new user has it after
an hour (four accounts, one with a 60-character email, one at its limit, one signed out), a
morning's routing decisions, and what a user would see (overflow, hidden text, covered buttons)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.fakes.seed import add_account, cool_down, usage_at
from tests.fakes.upstream import FakeUpstream
from tray.models import Account, AccountState, CandidateScore, Decision
from tray.store import Store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 420, "height": 860}
LONG_EMAIL = "alexandra.konstantinopoulou.research-lab@enterprise-corp.com"  # 60 characters

playwright_api = pytest.importorskip("playwright.sync_api")


@contextmanager
def chromium() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def people(store: Store, upstream: FakeUpstream | None = None) -> list[Account]:
    """Dana (work, primary, Pro), a long team address, a seat at its 5-hour limit, a signed-out
    spare. With ``upstream`` (a running pool's fake backend), the backend knows each account and
    answers its usage with the same figures, so the proxy's own quota fetches change nothing."""
    seeded: list[tuple[str, str, tuple[dict[str, Any], float]]] = [
        ("dana@example.com", "pro", usage_at(38, 61, plan="pro")),
        (LONG_EMAIL, "plus", usage_at(74, 48, short_reset_s=25 * 60 + 30)),
        ("team-seat@example.com", "team", usage_at(100, 82, short_reset_s=38 * 60, plan="team", allowed=False,
                                                    limit_reached=True)),
        ("spare@example.com", "plus", usage_at(12, 30, age_s=40 * 60)),
    ]
    dana, long, team, spare = (
        add_account(store, email, plan=plan, upstream=upstream, usage=payload)
        for email, plan, (payload, _) in seeded
    )
    store.set_label(dana.id, "Dana (work)")
    for account, (_, _, (payload, at)) in zip((dana, long, team, spare), seeded, strict=True):
        store.put_usage(account.id, json.dumps(payload), at)
    cool_down(store, team, 600)
    store.set_state(spare.id, AccountState.NEEDS_LOGIN, "Sign-in expired (refresh_token_reused)")
    return store.accounts()


def decide(store: Store, chosen: Account, others: list[Account], reason: str, fast: str | None,
           ago: float, status: int = 200, route: str = "/backend-api/codex/responses") -> None:
    ranked = [chosen, *others]
    scores = tuple(CandidateScore(a.id, a.name, round(0.81 - 0.27 * i, 2)) for i, a in enumerate(ranked))
    store.record_decision(Decision(at=time.time() - ago, account_id=chosen.id, account_name=chosen.name,
                                   reason=reason, scores=scores, fast_note=fast, cache_age=12.0,
                                   status=status, latency_ms=380.0 + ago % 400, route=route))


def morning(store: Store, accounts: list[Account]) -> None:
    """Routing decisions as the proxy records them, oldest first."""
    dana, long, team = accounts[0], accounts[1], accounts[2]
    fast_on = "Fast: enabled +4.210\n      (+9.210 - gate 5.000)"
    decide(store, dana, [long, team], "higher score", fast_on, 300)
    decide(store, dana, [long], "sticky session kept core", fast_on, 240)
    decide(store, long, [dana], f"failover after usage limit on {team.name}", "Fast: disabled (cap<3%, 5h)",
           120)
    decide(store, long, [dana], "sticky session kept pool; the client went away mid-stream",
           "Fast: disabled -1.500\n      (+3.500 - gate 5.000)", 60, status=200)
    decide(store, long, [dana, team], "touch dormant weekly", None, 20, route="/v1/responses")


def overflow(page: Any) -> int:
    """How far the page's content reaches past the window's width (0: it fits)."""
    return int(page.evaluate(
        "Math.max(document.documentElement.scrollWidth - innerWidth,"
        " (m => m.scrollWidth - m.clientWidth)(document.querySelector('main')))"))


def covered_buttons(page: Any) -> list[str]:
    """The buttons and links a toast covers at any scroll position of the page (scrolled through
    in steps while the toast shows): a covered one is where a click would land on the toast."""
    return list(page.evaluate("""() => {
      const main = document.querySelector('main');
      const toasts = document.getElementById('toasts');
      const head = document.querySelector('.page-head').getBoundingClientRect();
      const covered = new Set();
      for (let top = 0; top <= main.scrollHeight; top += 60) {
        main.scrollTop = top;
        for (const b of document.querySelectorAll('button, a.btn, nav a')) {
          if (b.offsetParent === null || toasts.contains(b)) continue;
          const r = b.getBoundingClientRect();
          const x = r.x + r.width / 2, y = r.y + r.height / 2;
          if (y < 0 || y > innerHeight || x < 0 || x > innerWidth) continue;
          const inHead = b.closest('.page-head') !== null;
          if (!inHead && y < head.bottom) continue;  // scrolled under the header, as pages do
          const hit = document.elementFromPoint(x, y);
          if (hit && toasts.contains(hit)) covered.add(b.textContent.trim());
        }
      }
      main.scrollTop = 0;
      return [...covered];
    }"""))


def visible_buttons(page: Any) -> list[dict[str, float]]:
    return list(page.evaluate("""[...document.querySelectorAll('button, a.btn, nav a')]
      .filter(b => b.offsetParent !== null).map(b => b.getBoundingClientRect())
      .map(r => ({x: r.x, y: r.y, width: r.width, height: r.height}))"""))


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])
