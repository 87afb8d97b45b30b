"""The tray menu's contents, health state and tooltip, from pool snapshots (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

import pytest

from tray.desktop.menu import Action, MenuItem, build_menu, short_name, tooltip, window_name
from tray.health import AccountView, Snapshot, duration, health, soonest_reset
from tray.models import Account, AccountState, Cooldown, Decision, Identity, TokenSet, Usage, Window

NOW = 1_800_000_000.0
URL = "http://127.0.0.1:4141"


def account(aid: int, email: str, *, priority: int, primary: bool = False, plan: str | None = "plus",
            state: AccountState = AccountState.ENABLED) -> Account:
    return Account(
        id=aid, identity=Identity(f"acc-{aid}", f"user-{aid}"), email=email, label=None, plan=plan,
        priority=priority, primary=primary, state=state, state_reason=None, state_at=None,
        tokens=TokenSet("a", "r", None, NOW + 3600), created_at=NOW, updated_at=NOW,
    )


def usage(short_used: float, long_used: float, short_reset: float = 4200, long_reset: float = 3 * 86400,
          blocked: bool = False) -> Usage:
    return Usage(
        plan_type="plus", allowed=not blocked, limit_reached=blocked,
        primary=Window(short_used, 18000, short_reset, NOW + short_reset),
        secondary=Window(long_used, 604800, long_reset, NOW + long_reset),
    )


def view(aid: int = 1, email: str = "work@x.com", priority: int = 0, primary: bool = True,
         u: Usage | None = None, cooldown: Cooldown | None = None, **kw: object) -> AccountView:
    return AccountView(account(aid, email, priority=priority, primary=primary, **kw),  # type: ignore[arg-type]
                       u, cooldown)


def snap(*views: AccountView, running: bool = True, **kw: object) -> Snapshot:
    return Snapshot(now=NOW, running=running, proxy_url=URL, accounts=views, autostart=False,
                    **kw)  # type: ignore[arg-type]


def texts(items: tuple[MenuItem, ...]) -> list[str]:
    return [i.text for i in items]


def test_account_line_shows_plan_role_both_windows_and_resets() -> None:
    menu = build_menu(snap(view(u=usage(42, 12))))
    assert ("work@x.com · plus · primary · 5h 42 % used (resets in 1 h 10 min) · weekly 12 % used "
            "(resets in 3 d)") in texts(menu.items)


def test_menu_has_every_entry_of_the_product_in_order() -> None:
    menu = build_menu(snap(view(u=usage(42, 12)), view(2, "spare@x.com", 1, False, u=usage(0, 0))))
    t = [x for x in texts(menu.items) if x != "-"]
    assert t[0] == "All good"
    assert t[1] == f"Proxy {URL} (click to copy)"
    assert t[2].startswith("work@x.com") and t[3].startswith("spare@x.com · plus · pool")
    assert t[4:] == ["Add account (browser)…", "Add account (device code)…", "Open pool window…",
                     "Start at login", "Open config file", "Quit"]
    assert menu.items[0].action is Action.OPEN_WINDOW
    head = menu.items[1]
    assert head.action is Action.COPY_URL
    assert menu.find("Open pool window").default  # type: ignore[union-attr]
    assert menu.find("Quit").action is Action.QUIT  # type: ignore[union-attr]


def test_accounts_follow_priority_order_not_snapshot_order() -> None:
    menu = build_menu(snap(view(2, "b@x.com", 1, False), view(1, "a@x.com", 0, True)))
    lines = [x for x in texts(menu.items) if "@x.com" in x]
    assert lines[0].startswith("a@x.com") and lines[1].startswith("b@x.com")


def test_account_submenu_actions_and_their_availability() -> None:
    menu = build_menu(snap(view(1, "a@x.com", 0, True), view(2, "b@x.com", 1, False)))
    first, second = menu.find("a@x.com"), menu.find("b@x.com")
    assert first is not None and second is not None
    assert texts(first.submenu) == ["Make primary", "Move up", "Move down", "Disable", "Remove…"]
    by_text = {i.text: i for i in first.submenu}
    assert not by_text["Make primary"].enabled and not by_text["Move up"].enabled
    assert by_text["Move down"].enabled and by_text["Move down"].action is Action.MOVE_DOWN
    assert by_text["Move down"].arg == 1
    other = {i.text: i for i in second.submenu}
    assert other["Make primary"].enabled and other["Move up"].enabled and not other["Move down"].enabled
    assert other["Remove…"].action is Action.REMOVE and other["Remove…"].arg == 2


def test_disabled_account_offers_enable_and_needs_login_offers_relogin_first() -> None:
    menu = build_menu(snap(view(1, "a@x.com", 0, True, state=AccountState.DISABLED),
                           view(2, "b@x.com", 1, False, state=AccountState.NEEDS_LOGIN)))
    a, b = menu.find("a@x.com"), menu.find("b@x.com")
    assert a is not None and b is not None
    assert "disabled" in a.text and "Enable" in texts(a.submenu) and "Re-login…" not in texts(a.submenu)
    assert "needs login" in b.text
    # Signed out: sign in again comes first; turning it off or making it primary makes no sense now.
    assert texts(b.submenu) == ["Re-login…", "Move up", "Move down", "Remove…"]
    relogin = b.submenu[0]
    assert relogin.action is Action.RELOGIN and relogin.arg == 2


def test_unknown_quota_and_a_rate_limit_are_spelled_out() -> None:
    cool = Cooldown(1, NOW + 600, 429, "rate limited", "body")
    menu = build_menu(snap(view(u=None, cooldown=cool, plan=None)), UTC)
    assert "work@x.com · primary · rate limited, back at 08:10 · quota not known yet" in texts(menu.items)
    error = Cooldown(1, NOW + 90, 502, "upstream error", "default")
    menu = build_menu(snap(view(u=usage(20, 10), cooldown=error)), UTC)
    assert menu.find("work@x.com").text.startswith(  # type: ignore[union-attr]
        "work@x.com · plus · primary · resting after an error, back at 08:01 · 5h 20 % used")


def test_an_account_at_its_limit_says_when_it_resets_not_http_429() -> None:
    # A usage-limit 429 leaves both the quota (limit reached) and a cooldown until the reset.
    cool = Cooldown(1, NOW + 23 * 60, 429, "rate limited", "body")
    full = view(u=usage(100, 40, short_reset=23 * 60, blocked=True), cooldown=cool)
    line = build_menu(snap(full, view(2, "b@x.com", 1, False, u=usage(10, 10))), UTC).find("work@x.com")
    assert line is not None
    assert line.text == ("work@x.com · plus · primary · usage limit reached, resets 08:23 · "
                         "weekly 40 % used (resets in 3 d)")
    assert "429" not in line.text
    # at 100 % without the payload saying so, the same words
    spent = build_menu(snap(view(u=usage(100, 40, short_reset=23 * 60))), UTC).find("work@x.com")
    assert spent is not None and "· usage limit reached, resets 08:23 ·" in spent.text


def test_an_exhausted_pool_says_until_when_on_the_top_line() -> None:
    a = view(u=usage(100, 40, short_reset=23 * 60, blocked=True))
    b = view(2, "b@x.com", 1, False, u=usage(100, 70, short_reset=80 * 60, blocked=True))
    menu = build_menu(snap(a, b), UTC)
    assert menu.items[0].text == "Pool exhausted until 08:23 (in 23 min)"
    assert tooltip(snap(a, b), UTC).splitlines()[0] == "codex-pool: pool exhausted until 08:23 (in 23 min)"


def test_after_a_reset_without_traffic_it_says_resetting_not_zero() -> None:
    passed = replace(usage(96, 50), primary=Window(96, 18000, 0, NOW - 300))
    line = build_menu(snap(view(u=passed)), UTC).find("work@x.com")
    assert line is not None
    assert line.text == ("work@x.com · plus · primary · 5h resetting, checking… · weekly 50 % used "
                         "(resets in 3 d)")
    assert "0 %" not in line.text.replace("50 %", "")
    assert health(snap(view(u=passed))) == "healthy"  # 96 % of a window that has since reset is not "low"


def test_the_account_that_served_the_last_request_is_marked() -> None:
    served = Decision(at=NOW - 30, account_id=2, account_name="b@x.com", reason="higher score",
                      scores=(), fast_note=None, cache_age=2.0, status=200, latency_ms=80.0)
    menu = build_menu(snap(view(u=usage(1, 1)), view(2, "b@x.com", 1, False, u=usage(1, 1)),
                           last_decision=served))
    marked = [x for x in texts(menu.items) if x.endswith(" · served last")]
    assert len(marked) == 1 and marked[0].startswith("b@x.com")
    failed = replace(served, status=429)
    assert not any("served last" in x for x in texts(build_menu(snap(view(u=usage(1, 1)),
                                                                      last_decision=failed)).items))


def test_empty_pool_and_stopped_proxy() -> None:
    menu = build_menu(Snapshot(now=NOW, running=False, proxy_url=None))
    assert menu.items[0] == MenuItem("Proxy stopped", enabled=False)
    assert "No accounts yet: add one below" in texts(menu.items)
    assert not menu.find("Open pool window").enabled  # type: ignore[union-attr]
    assert menu.find("Quit").enabled  # type: ignore[union-attr]
    empty = build_menu(snap())
    assert empty.items[0].text == "No accounts"  # not "some accounts need attention"
    assert tooltip(snap()).splitlines()[0] == "codex-pool: no accounts"


def test_a_config_problem_says_so_and_its_line_opens_the_config_file() -> None:
    menu = build_menu(snap(view(u=usage(20, 10)), config_problems=('"port" must be a number',)))
    top = menu.items[0]
    assert top.text == "Config problem (click to open the config file)"
    assert top.action is Action.OPEN_CONFIG and top.enabled
    hover = tooltip(snap(view(u=usage(20, 10)), config_problems=("x",)))
    assert hover.startswith("codex-pool: config problem")


def test_a_proxy_that_cannot_start_says_why_and_offers_to_retry() -> None:
    snapshot = Snapshot(now=NOW, running=False, proxy_url=None,
                        start_problem="port 4466 is in use (pid 812: nc)")
    head = build_menu(snapshot).items[0]
    assert head.text == "Proxy cannot start: port 4466 is in use (pid 812: nc) · retrying, click to retry now"
    assert head.action is Action.RETRY_START and head.enabled
    assert health(snapshot) == "stopped"


def test_notifications_macos_refused_are_named_under_the_proxy_line() -> None:
    said = "Notifications are off: allow codex-pool in System Settings › Notifications"
    items = build_menu(replace(snap(), notice_problem=said)).items
    proxy = next(n for n, i in enumerate(items) if i.text.startswith("Proxy "))
    assert [i.text for i in items[proxy + 1:proxy + 3]] == [said, "-"]
    assert items[proxy + 1].action is None and not items[proxy + 1].enabled
    assert build_menu(snap()).find("Notifications") is None


@pytest.mark.parametrize(("autostart", "checked", "enabled"), [(True, True, True), (False, False, True),
                                                               (None, False, False)])
def test_start_at_login_is_a_check_item(autostart: bool | None, checked: bool, enabled: bool) -> None:
    item = build_menu(replace(snap(), autostart=autostart)).find("Start at login")
    assert item is not None and item.checked is checked and item.enabled is enabled
    assert item.action is Action.TOGGLE_AUTOSTART


def test_health_states() -> None:
    ok = view(u=usage(20, 10))
    assert health(snap(ok)) == "healthy"
    assert health(snap(ok, running=False)) == "stopped"
    assert health(snap()) == "degraded"  # no accounts yet
    low = view(2, "b@x.com", 1, False, u=usage(95, 10))
    assert health(snap(ok, low)) == "degraded"
    cooling = view(2, "b@x.com", 1, False, cooldown=Cooldown(2, NOW + 60, 429, "x", "default"))
    assert health(snap(ok, cooling)) == "degraded"
    stale_cool = view(2, "b@x.com", 1, False, cooldown=Cooldown(2, NOW - 1, 429, "x", "default"))
    assert health(snap(ok, stale_cool)) == "healthy"
    login = view(2, "b@x.com", 1, False, state=AccountState.NEEDS_LOGIN)
    assert health(snap(ok, login)) == "degraded"
    assert health(snap(ok, config_problems=("port: not a number",))) == "degraded"
    blocked = view(u=usage(100, 40, blocked=True))
    assert health(snap(blocked, replace(cooling, cooldown=Cooldown(2, NOW + 60, 429, "x", "body")))) == \
        "exhausted"
    assert health(snap(view(state=AccountState.DISABLED), login)) == "exhausted"
    reset_passed = view(u=replace(usage(100, 40, blocked=True),
                                  primary=Window(100, 18000, 0, NOW - 5)))
    assert health(snap(reset_passed)) != "exhausted"  # usable again (routing refetches)


def test_soonest_reset_is_the_first_account_back() -> None:
    a = view(1, "a@x.com", 0, True, cooldown=Cooldown(1, NOW + 900, 429, "x", "body"))
    b = view(2, "b@x.com", 1, False, u=usage(100, 50, short_reset=300, blocked=True))
    assert soonest_reset(snap(a, b)) == NOW + 300
    assert soonest_reset(snap(a, view(2, "c@x.com", 1, False))) is None  # c is usable


def test_tooltip_names_url_state_and_last_decision() -> None:
    last = Decision(at=NOW - 30, account_id=1, account_name="work@x.com", reason="higher score",
                    scores=(), fast_note=None, cache_age=2.0, status=200, latency_ms=80.0)
    text = tooltip(snap(view(u=usage(1, 1)), last_decision=last))
    last_line = "Last: work@x.com, higher score → 200 (just now)"
    assert text.splitlines() == ["codex-pool: all good", URL, last_line]
    assert tooltip(snap(running=False)).splitlines() == ["codex-pool: proxy stopped"]


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "now"), (40, "40 s"), (59.6, "1 min"), (60, "1 min"), (61, "2 min"), (23 * 60, "23 min"),
    (4200, "1 h 10 min"), (7200, "2 h 00 min"), (7740, "2 h 09 min"), (86400 + 5 * 3600, "1 d 5 h"),
    (3 * 86400, "3 d"), (2 * 86400 + 23 * 3600, "2 d 23 h")])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(18000, "5h"), (604800, "weekly"), (86400, "1d"), (None, "?"),
                                               (1800, "30m")])
def test_every_surface_names_windows_alike(seconds: float | None, text: str) -> None:
    assert window_name(seconds) == text


def test_a_long_address_is_cut_in_the_middle_so_the_menu_stays_narrow() -> None:
    assert short_name("work@x.com") == "work@x.com"
    assert short_name("team-seat-with-a-long-address@example.com") == "team-seat-with-a-lo…@example.com"
    assert len(short_name("someone@" + "very-long-subdomain." * 3 + "example.com")) == 32
    menu = build_menu(snap(view(email="team-seat-with-a-long-address@example.com", u=usage(1, 1))))
    assert menu.items[3].text.startswith("team-seat-with-a-lo…@example.com · plus · primary")
