"""tray.health: when an account that cannot serve serves again (pure, fixed times), and one health
in the same words on every surface (a real engine: the menu, the window's API, `codex-pool status`)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.fakes import seed
from tests.fakes.apphost import running_engine
from tests.support.proxykit import Pool
from tray.cli import main
from tray.desktop.menu import build_menu, tooltip
from tray.health import AccountView, snapshot_of, unusable_until
from tray.models import Account, AccountState, Cooldown, Identity, TokenSet, Usage, Window
from tray.quota import shown_usage

NOW = 1_800_000_000.0


def account() -> Account:
    tokens = TokenSet("at", "rt", "it", NOW + 3600)
    return Account(1, Identity("acc-1", "user-1"), "a@example.com", None, "plus", 0, False,
                   AccountState.ENABLED, None, NOW, tokens, NOW, NOW)


def usage(used: float, reset_in: float, *, blocked: bool = False) -> Usage:
    return Usage("plus", not blocked, blocked, Window(used, 18000.0, reset_in, NOW + reset_in),
                 Window(40.0, 604800.0, 86400.0, NOW + 86400.0))


def test_a_window_at_its_limit_holds_the_account_until_it_resets() -> None:
    # At 100 % the account cannot serve, whether or not the payload also says "limit reached":
    # the window and the menu then say "usage limit reached, resets <that time>".
    assert unusable_until(AccountView(account(), usage(100.0, 2400.0)), NOW) == NOW + 2400.0
    assert unusable_until(AccountView(account(), usage(100.0, 2400.0, blocked=True)), NOW) == NOW + 2400.0
    # a cooldown shorter than the window does not make it come back sooner
    cooling = Cooldown(1, NOW + 600.0, 429, "rate limited", "body")
    assert unusable_until(AccountView(account(), usage(100.0, 2400.0), cooling), NOW) == NOW + 2400.0


def test_an_account_below_its_limit_or_past_its_reset_is_usable() -> None:
    assert unusable_until(AccountView(account(), usage(99.0, 2400.0)), NOW) is None
    assert unusable_until(AccountView(account(), usage(100.0, 2400.0)), NOW + 2401.0) is None


# --- one health, one wording: the menu, the window's API and `codex-pool status` agree ---------------


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_engine([]) as running:
        yield running


def said(pool: Pool, capsys: pytest.CaptureFixture[str]) -> tuple[str, str, str, str]:
    """(the menu's top line, the tooltip's first line, the window API's words, `status`'s words)."""
    engine, now = pool.engine, time.time()
    store = engine.store
    accounts, usages = store.accounts(), store.usages()
    snapshot = replace(snapshot_of(accounts, {a.id: shown_usage(usages.get(a.id)) for a in accounts},
                                   store.cooldowns(now), now, config_problems=engine.loaded.messages),
                       proxy_url=engine.url)
    menu = build_menu(snapshot).items[0].text
    hover = tooltip(snapshot).splitlines()[0]
    with httpx.Client(base_url=engine.url + "/api", headers={"X-Codex-Pool-Token": engine.ui_token},
                      timeout=10) as api:
        window = api.get("/status").json()["health"]
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert window["state"] == status["health"]
    return menu, hover.removeprefix("codex-pool: "), window["words"], status["health_words"]


def test_every_surface_says_the_same_about_the_pool(pool: Pool, capsys: pytest.CaptureFixture[str]) -> None:
    menu, hover, window, status = said(pool, capsys)
    assert menu == "No accounts" and hover == window == status == "no accounts"
    store = pool.engine.store
    one, two = seed.add_account(store, "one@example.com"), seed.add_account(store, "two@example.com")
    seed.put_usage(store, one, 100, 40, short_reset_s=23 * 60 + 20, allowed=False, limit_reached=True)
    seed.put_usage(store, two, 100, 70, short_reset_s=80 * 60, allowed=False, limit_reached=True)
    menu, hover, window, status = said(pool, capsys)
    assert re.fullmatch(r"pool exhausted until \d\d:\d\d \(in 2[34] min\)", window), window
    assert menu == window[:1].upper() + window[1:] and hover == status == window
    seed.put_usage(store, two, 20, 10)
    pool.engine.paths.config_file.write_text('fast-mode = "sometimes"\n', encoding="utf-8")
    pool.engine.reload_config()
    menu, hover, window, status = said(pool, capsys)
    assert menu == "Config problem (click to open the config file)"
    assert hover == window == status == "config problem"
