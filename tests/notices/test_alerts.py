"""Once-per-episode notification logic (pure): each kind, its episodes, and its switch."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

from tests.desktop.test_menu import NOW, snap, usage, view
from tray.health import until_text
from tray.models import (
    AccountState,
    ConfigInvalid,
    Cooldown,
    NeedsLogin,
    PoolAvailable,
    PoolExhausted,
    QuotaLow,
)
from tray.notices.alerts import (
    CONFIG_INVALID,
    NEEDS_LOGIN,
    POOL_AVAILABLE,
    POOL_EXHAUSTED,
    QUOTA_LOW,
    Alerts,
)


def kinds(notices: list) -> list[str]:  # type: ignore[type-arg]
    return [n.kind for n in notices]


def test_config_invalid_lists_problems_once_per_problem_set() -> None:
    alerts = Alerts()
    first = alerts.on_event(ConfigInvalid("/c/config.toml", ("port: not a number", "fast-mode: bad")), NOW)
    assert kinds(first) == [CONFIG_INVALID]
    assert "port: not a number" in first[0].body and "fast-mode: bad" in first[0].body
    assert "/c/config.toml" in first[0].body
    again = ConfigInvalid("/c/config.toml", ("port: not a number", "fast-mode: bad"))
    assert alerts.on_event(again, NOW) == []
    assert alerts.on_config(("port: not a number", "fast-mode: bad")) == []
    changed = alerts.on_config(("port: not a number",))
    assert kinds(changed) == [CONFIG_INVALID]
    assert alerts.on_config(()) == []  # fixed: the episode ends quietly
    assert kinds(alerts.on_config(("port: not a number",))) == [CONFIG_INVALID]


def test_needs_login_once_per_account_until_it_recovers() -> None:
    alerts = Alerts()
    note = alerts.on_event(NeedsLogin(2, "spare@x.com", "refresh_token_reused"), NOW)
    assert kinds(note) == [NEEDS_LOGIN] and "spare@x.com" in note[0].title
    assert alerts.on_event(NeedsLogin(2, "spare@x.com", "again"), NOW) == []
    needing = view(2, "spare@x.com", 1, False, state=AccountState.NEEDS_LOGIN)
    ok = view(u=usage(10, 10))
    assert alerts.observe(snap(ok, needing)) == []  # the store agrees: same episode
    assert alerts.observe(snap(ok, replace(needing, account=replace(needing.account,
                                                                    state=AccountState.ENABLED)))) == []
    assert kinds(alerts.observe(snap(ok, needing))) == [NEEDS_LOGIN]  # a new episode


def test_needs_login_seen_only_in_the_store_is_announced() -> None:
    alerts = Alerts()
    needing = view(3, "old@x.com", 1, False, state=AccountState.NEEDS_LOGIN)
    notes = alerts.observe(snap(view(u=usage(1, 1)), needing))
    assert kinds(notes) == [NEEDS_LOGIN] and "old@x.com" in notes[0].title
    assert alerts.observe(snap(view(u=usage(1, 1)), needing)) == []


def test_exhaustion_then_available_once_each() -> None:
    alerts = Alerts(tz=UTC)
    notes = alerts.on_event(PoolExhausted(NOW + 4200), NOW)
    assert kinds(notes) == [POOL_EXHAUSTED]
    assert notes[0].title == "codex-pool: pool exhausted until 09:10 (in 1 h 10 min)"
    assert notes[0].body == "Every account is at its usage limit: requests get a 429 until then."
    assert notes[0].state == "exhausted"  # its icon is the exhausted one, not the green one
    assert alerts.on_event(PoolExhausted(NOW + 4000), NOW) == []
    back = alerts.on_event(PoolAvailable(1, "work@x.com"), NOW)
    assert kinds(back) == [POOL_AVAILABLE] and back[0].body == "work@x.com can take requests again."
    assert back[0].state == "healthy"
    assert alerts.on_event(PoolAvailable(), NOW) == []
    assert kinds(alerts.on_event(PoolExhausted(None), NOW)) == [POOL_EXHAUSTED]


def test_available_is_never_said_without_an_exhaustion_first() -> None:
    alerts = Alerts()
    assert alerts.on_event(PoolAvailable(), NOW) == []
    assert alerts.observe(snap(view(u=usage(1, 1)))) == []


def test_exhaustion_from_snapshots_with_soonest_reset() -> None:
    alerts = Alerts(tz=UTC)
    cooling = view(cooldown=Cooldown(1, NOW + 600, 429, "rate limited", "body"))
    blocked = view(2, "b@x.com", 1, False, u=usage(100, 30, short_reset=1800, blocked=True))
    notes = alerts.observe(snap(cooling, blocked))
    assert kinds(notes) == [POOL_EXHAUSTED] and notes[0].title.endswith("until 08:10 (in 10 min)")
    assert alerts.observe(snap(cooling, blocked)) == []
    back = alerts.observe(snap(replace(cooling, cooldown=None), blocked))
    assert kinds(back) == [POOL_AVAILABLE]
    assert back[0].body == "work@x.com can take requests again."  # the account is named


def test_engine_exhaustion_is_not_ended_by_a_snapshot_that_never_saw_it() -> None:
    alerts = Alerts()
    alerts.on_event(PoolExhausted(NOW + 60), NOW)
    assert alerts.observe(snap(view(u=usage(1, 1)))) == []  # the store lags behind the engine
    assert kinds(alerts.on_event(PoolAvailable(), NOW)) == [POOL_AVAILABLE]


def test_stopped_proxy_says_nothing() -> None:
    alerts = Alerts()
    needing = view(state=AccountState.NEEDS_LOGIN)
    assert alerts.observe(snap(needing, running=False)) == []


def test_quota_low_is_opt_in_and_once_per_episode() -> None:
    low = view(u=usage(95, 20))
    assert Alerts().observe(snap(low)) == []
    alerts = Alerts({QUOTA_LOW: True})
    notes = alerts.observe(snap(low))
    assert kinds(notes) == [QUOTA_LOW] and "5% left" in notes[0].body
    assert alerts.observe(snap(low)) == []
    assert alerts.observe(snap(view(u=usage(10, 20)))) == []  # window reset: episode over
    assert kinds(alerts.observe(snap(low))) == [QUOTA_LOW]
    assert kinds(Alerts({QUOTA_LOW: True}).on_event(QuotaLow(1, "work@x.com", 4.0), NOW)) == [QUOTA_LOW]
    assert Alerts({QUOTA_LOW: True}, low_percent=3).observe(snap(low)) == []  # quota-low-percent


def test_switched_off_kinds_are_silent_but_keep_their_episode() -> None:
    alerts = Alerts({NEEDS_LOGIN: False, POOL_EXHAUSTED: False, CONFIG_INVALID: False})
    assert alerts.on_event(NeedsLogin(2, "b", "x"), NOW) == []
    assert alerts.on_event(ConfigInvalid("p", ("bad",)), NOW) == []
    assert alerts.on_event(PoolExhausted(None), NOW) == []
    assert kinds(alerts.on_event(PoolAvailable(), NOW)) == [POOL_AVAILABLE]
    alerts.set_switches({NEEDS_LOGIN: True, "no-such-kind": True})
    assert alerts.on_event(NeedsLogin(2, "b", "x"), NOW) == []  # same episode: not repeated
    assert kinds(alerts.on_event(NeedsLogin(3, "c", "x"), NOW)) == [NEEDS_LOGIN]
    assert alerts.enabled(NEEDS_LOGIN) and not alerts.enabled("no-such-kind")


def test_until_text_uses_weekday_when_not_today() -> None:
    assert until_text(NOW + 2 * 86400, NOW, UTC) == "until Sun 08:00 (in 2 d)"
    assert until_text(NOW + 600, NOW, UTC) == "until 08:10 (in 10 min)"


def test_each_notice_names_its_account_once_and_offers_its_buttons() -> None:
    alerts = Alerts({QUOTA_LOW: True})
    login = alerts.on_event(NeedsLogin(2, "spare@x.com", "refresh_token_reused"), NOW)[0]
    assert f"{login.title} {login.body} {login.fallback}".count("spare@x.com") == 1
    assert login.actions == (("relogin:2", "Re-login"), ("window", "Open pool window"))
    assert "Re-login" in login.fallback  # said in words where the desktop shows no buttons
    low = alerts.on_event(QuotaLow(1, "work@x.com", 4.0), NOW)[0]
    assert f"{low.title} {low.body}".count("work@x.com") == 1
    bad = alerts.on_config(("port: not a number",), "/c/config.toml")[0]
    assert bad.title == "codex-pool: config problem" and bad.actions == (("config", "Open config file"),)
