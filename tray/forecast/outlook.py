"""The pool's usage history and forecast as the surfaces show them, read from the pool file.

:func:`forecasts` is what ``codex-pool status``, the tray and the Usage page say about each window
(see :mod:`tray.forecast.pace`); :func:`report` gathers a time range for ``codex-pool usage`` and the
Usage page's chart, which :func:`usage_json`, :func:`usage_rows` and :func:`chart_json` shape.
Reads only: one range query plus one indexed read per window (:meth:`tray.store.accounts.Store.samples`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from tray.forecast import pace as forecast
from tray.forecast import pool as poolview
from tray.forecast.pace import Forecast
from tray.forecast.pool import Member
from tray.models import Account, UsageSample
from tray.quota import window_name

WINDOWS = ("5h", "weekly")  # always reported, even before any sample
CHART_POINTS = 289  # one point every 5 minutes over a day, every 35 minutes over a week
MAX_HOURS = 35 * 24  # the history keeps 35 days


class SampleStore(Protocol):
    """The part of :class:`tray.store.accounts.Store` read here."""

    def accounts(self, include_inactive: bool = True) -> list[Account]: ...

    def samples(
        self, since: float, until: float | None = None, *, baseline: bool = True
    ) -> list[UsageSample]: ...


def _forecasts(grouped: Mapping[str, list[Member]], now: float) -> dict[str, Forecast]:
    labels = [*WINDOWS, *sorted(k for k in grouped if k not in WINDOWS)]
    return {label: forecast.forecast(label, grouped.get(label, []), now) for label in labels}


def forecasts(store: SampleStore, now: float) -> dict[str, Forecast]:
    """Each window's forecast at ``now``, ``5h`` and ``weekly`` first."""
    samples = store.samples(now - forecast.LOOKBACK)
    return _forecasts(poolview.members(store.accounts(), samples), now)


@dataclass(frozen=True)
class Report:
    """A time range of the history: every account, the samples (with where each window stood when
    the range began), the pool's members per window and the forecasts at ``now``."""

    now: float
    since: float
    accounts: tuple[Account, ...]
    samples: tuple[UsageSample, ...]
    members: Mapping[str, list[Member]]
    forecasts: Mapping[str, Forecast]

    @property
    def windows(self) -> list[str]:
        seen = {window_name(s.window_seconds) for s in self.samples}
        return [*WINDOWS, *sorted(seen - set(WINDOWS))]

    def in_range(self) -> list[UsageSample]:
        return [s for s in self.samples if s.at >= self.since]


def report(store: SampleStore, now: float, hours: float) -> Report:
    """The last ``hours`` hours (at most :data:`MAX_HOURS`) of history."""
    since = now - max(1 / 60, min(float(hours), MAX_HOURS)) * 3600.0
    samples = store.samples(min(since, now - forecast.LOOKBACK))
    accounts = tuple(store.accounts())
    grouped = poolview.members(accounts, samples)
    return Report(now, since, accounts, tuple(samples), grouped, _forecasts(grouped, now))


# --- shapes ----------------------------------------------------------------------------------------


def iso(at: float | None) -> str | None:
    """ISO 8601 in UTC (``2025-03-04T14:00:00Z``); ``None`` stays ``None``."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def forecast_json(found: Mapping[str, Forecast]) -> dict[str, dict[str, Any]]:
    """``status --json``'s ``forecast``: per window ``used_percent``, ``pace_percent_per_hour``,
    ``runs_out_at`` and ``next_reset_at`` (ISO 8601 UTC), ``null`` where unknown."""
    return {
        label: {
            "used_percent": _round(fc.used_percent),
            "pace_percent_per_hour": _round(fc.pace_percent_per_hour),
            "runs_out_at": iso(fc.runs_out_at),
            "next_reset_at": iso(fc.next_reset_at),
        }
        for label, fc in found.items()
    }


def _pool_points(rep: Report, label: str) -> list[dict[str, Any]]:
    window_members = rep.members.get(label, [])
    times = sorted({s.at for m in window_members for s in m.samples if s.at >= rep.since} | {rep.now})
    points = []
    for t in times:
        used = poolview.pool_used(window_members, t)
        if used is not None:
            points.append({"at": iso(t), "used_percent": _round(used)})
    return points


def _sample_json(sample: UsageSample) -> dict[str, Any]:
    return {"at": iso(sample.at), "used_percent": _round(sample.used_percent),
            "reset_at": iso(sample.reset_at), "source": sample.source}


def usage_json(rep: Report) -> dict[str, Any]:
    """``codex-pool usage --json``: the pool's used % per window at each sample time (and now), and
    every account's own samples in the range."""
    by_account: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for sample in rep.in_range():
        window = by_account.setdefault(sample.account_id, {w: [] for w in rep.windows})
        window.setdefault(window_name(sample.window_seconds), []).append(_sample_json(sample))
    return {
        "since": iso(rep.since),
        "now": iso(rep.now),
        "pool": {label: _pool_points(rep, label) for label in rep.windows},
        "accounts": [
            {"id": a.id, "email": a.email, "name": a.name,
             "samples": by_account.get(a.id, {w: [] for w in rep.windows})}
            for a in rep.accounts
        ],
        "forecast": forecast_json(rep.forecasts),
    }


CSV_HEADER = ("at", "series", "account_id", "email", "window", "used_percent", "reset_at", "source")


def usage_rows(rep: Report) -> list[tuple[Any, ...]]:
    """``codex-pool usage --csv``: one row per pool point and per sample, oldest first."""
    rows: list[tuple[Any, ...]] = []
    for label in rep.windows:
        rows += [(p["at"], "pool", "", "", label, p["used_percent"], "", "")
                 for p in _pool_points(rep, label)]
    emails = {a.id: a.email or "" for a in rep.accounts}
    for sample in rep.in_range():
        rows.append((iso(sample.at), "account", sample.account_id, emails.get(sample.account_id, ""),
                     window_name(sample.window_seconds), _round(sample.used_percent),
                     iso(sample.reset_at) or "", sample.source))
    return sorted(rows, key=lambda r: (str(r[0]), r[1] != "pool"))


def chart_json(rep: Report, tz: tzinfo | None = None, points: int = CHART_POINTS) -> dict[str, Any]:
    """The Usage page's data: per window a time grid over the range, the pool's line, one line per
    account with samples, the resets in view, the forecast and its sentence."""
    times = poolview.grid(rep.since, rep.now, points)
    names = {a.id: a.name for a in rep.accounts}
    ahead = rep.now + (rep.now - rep.since) / 4  # the chart shows a quarter of its range ahead
    windows = []
    for label in rep.windows:
        window_members = rep.members.get(label, [])
        fc = rep.forecasts.get(label) or forecast.forecast(label, [], rep.now)
        resets = sorted({round(t) for m in window_members
                         for t in poolview.resets(m.samples, rep.since, ahead)})
        windows.append({
            "window": label,
            "title": f"{forecast.window_words(label).capitalize()} window",
            "sentence": forecast.sentence(fc, rep.now, tz),
            "forecast": {"used_percent": _round(fc.used_percent),
                         "pace_percent_per_hour": _round(fc.pace_percent_per_hour),
                         "runs_out_at": fc.runs_out_at, "next_reset_at": fc.next_reset_at,
                         "early": fc.early, "accounts": fc.accounts},
            "times": [round(t, 1) for t in times],
            "pool": [_round(v) for v in poolview.pool_series(window_members, times)],
            "accounts": [{"id": m.account_id, "name": names.get(m.account_id, str(m.account_id)),
                          "values": [_round(v) for v in poolview.series(m.samples, times)]}
                         for m in window_members],
            "resets": resets,
        })
    return {"now": rep.now, "since": rep.since, "until": ahead, "windows": windows}


def status_text(found: Mapping[str, Forecast], now: float, tz: tzinfo | None = None) -> list[str]:
    """``codex-pool status``'s lines: each window's pool use and pace, then its sentence."""
    lines = []
    for label, fc in found.items():
        if fc.used_percent is None:
            continue
        pace = "pace unknown" if fc.pace_percent_per_hour is None else f"{fc.pace_percent_per_hour:.1f} %/h"
        lines.append(f"{label} {fc.used_percent:.0f}% used, {pace}: {forecast.sentence(fc, now, tz)}")
    return lines or ["no quota history yet"]


def first_early(found: Iterable[Forecast]) -> Forecast | None:
    """The window that runs out soonest before its reset, if any does."""
    early = [fc for fc in found if fc.early and fc.runs_out_at is not None]
    return min(early, key=lambda fc: fc.runs_out_at or 0.0) if early else None
