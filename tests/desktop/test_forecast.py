"""The forecast in the tray's pure parts: the menu's top line, the icon's state, the tooltip, and the
``forecast`` notification once per episode, switchable like the others."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

from tests.desktop.test_menu import NOW, snap, usage, view
from tray.desktop.menu import Action, build_menu, pool_line, tooltip
from tray.forecast.pace import Forecast
from tray.health import health
from tray.models import Config
from tray.notices.alerts import FORECAST, FORECAST_CLEAR, KINDS, Alerts

H = 3600.0
LASTS = Forecast("5h", 62.4, 8.0, None, NOW + 2 * H, 2)
EARLY = Forecast("5h", 62.4, 40.0, NOW + H, NOW + 1.5 * H, 2)  # NOW is 08:00 UTC
WEEK = Forecast("weekly", 40.2, 1.0, None, NOW + 3 * 86400, 2)


def test_under_the_health_line_is_the_pool_per_window() -> None:
    menu = build_menu(snap(view(u=usage(20, 10)), forecasts=(LASTS, WEEK)), UTC)
    assert menu.items[0].text == "All good"
    use = menu.items[1]
    assert use.text == "Pool: 5h 62 % used · weekly 40 % used"
    assert use.action is Action.OPEN_USAGE and use.enabled
    assert menu.items[2].text.startswith("Proxy ")


def test_the_top_line_tells_when_the_pool_runs_out_before_the_reset() -> None:
    assert pool_line(snap(forecasts=(EARLY, WEEK)), UTC) == (
        "Pool: 5h 62 % used · weekly 40 % used · 5h runs out 09:00, before the 09:30 reset")
    assert pool_line(snap(forecasts=(EARLY,)), UTC) == (
        "Pool: 5h 62 % used · runs out 09:00, before the 09:30 reset")
    out = replace(EARLY, runs_out_at=NOW)
    assert pool_line(snap(forecasts=(out,)), UTC) == "Pool: 5h 62 % used · out now, before the 09:30 reset"


def test_no_line_before_anything_is_known() -> None:
    unknown = Forecast("5h", None, None, None, None, 0)
    menu = build_menu(snap(view(u=usage(20, 10)), forecasts=(unknown,)))
    assert menu.items[0].text == "All good" and menu.items[1].text.startswith("Proxy ")
    assert pool_line(snap()) is None


def test_a_runout_before_the_reset_makes_the_icon_degraded() -> None:
    ok = view(u=usage(20, 10))
    assert health(snap(ok, forecasts=(LASTS, WEEK))) == "healthy"
    assert health(snap(ok, forecasts=(EARLY, WEEK))) == "degraded"
    assert "runs out" in tooltip(snap(ok, forecasts=(EARLY,)))
    assert tooltip(snap(ok, forecasts=(EARLY,))).splitlines()[0] == (
        "codex-pool: the pool may run out before it resets")


def test_the_forecast_notice_once_per_episode() -> None:
    alerts = Alerts(tz=UTC)
    ok = view(u=usage(20, 10))
    notes = alerts.observe(snap(ok, forecasts=(EARLY, WEEK)))
    assert [n.kind for n in notes] == [FORECAST]
    assert notes[0].body == ("At this pace the pool's 5-hour quota runs out at 09:00, before the next reset "
                             "(09:30).")
    assert alerts.observe(snap(ok, forecasts=(EARLY, WEEK))) == []
    # The pace wavers: a few minutes of "lasts" do not end the episode ...
    later = replace(snap(ok, forecasts=(LASTS, WEEK)), now=NOW + 300)
    assert alerts.observe(later) == []
    assert alerts.observe(replace(snap(ok, forecasts=(EARLY,)), now=NOW + 400)) == []
    # ... a quarter of an hour of "lasts" does, and the next runout is said again.
    assert alerts.observe(replace(later, now=NOW + 400 + FORECAST_CLEAR)) == []
    again = alerts.observe(replace(snap(ok, forecasts=(EARLY,)), now=NOW + 500 + FORECAST_CLEAR))
    assert [n.kind for n in again] == [FORECAST]


def test_the_forecast_notice_is_on_by_default_and_switchable() -> None:
    assert FORECAST in KINDS and Config().notifications.enabled(FORECAST)
    off = Alerts({FORECAST: False})
    assert off.observe(snap(view(u=usage(20, 10)), forecasts=(EARLY,))) == []


def test_no_forecast_notice_for_a_pool_already_out_or_exhausted() -> None:
    out = replace(EARLY, runs_out_at=NOW)
    assert Alerts().observe(snap(view(u=usage(20, 10)), forecasts=(out,))) == []
    blocked = view(u=usage(100, 10, blocked=True))
    assert [n.kind for n in Alerts().observe(snap(blocked, forecasts=(EARLY,)))] == ["pool-exhausted"]
