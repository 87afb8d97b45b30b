"""The pool's health, in one place: what the tray icon, the menu, the tooltip, the window API,
``codex-pool status`` and the notices say about the pool and its accounts.

Pure: :class:`Snapshot` is the pool as the surfaces see it (``now`` inside it); no store, no GUI.
Each surface shapes what it has into a snapshot (:func:`snapshot_of`) and asks :func:`pool_health`:
one rule and one wording. :class:`PoolHealth` carries the status (``healthy``, ``degraded``,
``exhausted``, ``empty``, ``config``, ``stopped``), the icon's state (:data:`Health`: the four the
icon draws) and the words every surface shows: "all good", "no accounts", "config problem", "some
accounts need attention", "pool exhausted until 15:40 (in 23 min)", "proxy stopped".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Literal

from tray.forecast.pace import Forecast, clock_text
from tray.models import Account, AccountState, Cooldown, Decision, Usage, Window

Health = Literal["healthy", "degraded", "exhausted", "stopped"]  # the icon's states
Status = Literal["healthy", "degraded", "exhausted", "empty", "config", "stopped"]
LOW_PERCENT_LEFT = 10.0  # a window with this much or less left makes the account "low"
ICONS: dict[Status, Health] = {
    "healthy": "healthy", "degraded": "degraded", "exhausted": "exhausted", "empty": "degraded",
    "config": "degraded", "stopped": "stopped",
}
HEALTH_WORDS: dict[Status, str] = {  # the words without a time in them (see pool_health)
    "healthy": "all good",
    "degraded": "some accounts need attention",
    "exhausted": "pool exhausted",
    "empty": "no accounts",
    "config": "config problem",
    "stopped": "proxy stopped",
}
EARLY_WORDS = "the pool may run out before it resets"  # degraded only by the forecast
NONE_ON_WORDS = "no account can take requests (all off or signed out)"  # exhausted, none enabled


@dataclass(frozen=True)
class AccountView:
    """One account as the menu sees it: the row, its usable quota (``None`` when unknown) and any
    active cooldown."""

    account: Account
    usage: Usage | None = None
    cooldown: Cooldown | None = None


@dataclass(frozen=True)
class Snapshot:
    now: float
    running: bool
    proxy_url: str | None
    accounts: tuple[AccountView, ...] = ()
    autostart: bool | None = None  # None: start at login is not available here
    last_decision: Decision | None = None
    config_problems: tuple[str, ...] = ()
    forecasts: tuple[Forecast, ...] = ()  # the pool's windows, 5h first (see tray.forecast.outlook)
    start_problem: str | None = None  # why the proxy cannot start, in a few words (it is retried)
    notice_problem: str | None = None  # what to do so notifications are shown (macOS refused them)


def duration(seconds: float) -> str:
    """A countdown in the window's format: ``40 s`` under a minute, then minutes rounded up and no
    seconds (``23 min``, ``2 h 09 min``, ``1 d 5 h``, ``3 d``); ``now`` when it is over."""
    if seconds <= 0:
        return "now"
    if round(seconds) < 60:
        return f"{max(1, round(seconds))} s"
    minutes = math.ceil(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins:02d} min"
    return f"{mins} min"


def until_text(at: float, now: float, tz: tzinfo | None = None) -> str:
    """``until 15:40 (in 23 min)``; ``until Tue 09:00 (in 1 d 5 h)`` when it is not today."""
    return f"until {clock_text(at, now, tz)} (in {duration(at - now)})"


def windows_of(usage: Usage | None) -> list[Window]:
    if usage is None:
        return []
    found = [w for w in (usage.primary, usage.secondary) if w is not None]
    return sorted(found, key=lambda w: w.window_seconds or math.inf)


def resetting(window: Window, now: float) -> bool:
    """The window's reset passed since its numbers were read: how much of the new one is used is
    not known until fresh usage arrives (the surfaces say "resetting, checking…", never 0 %)."""
    return window.reset_at is not None and window.reset_at <= now


def percent_left(usage: Usage | None, now: float | None = None) -> float | None:
    """The smallest share left over the account's windows, in percent (``None``: unknown); with
    ``now``, windows whose reset passed are not counted (their use is not known)."""
    used = [w.used_percent for w in windows_of(usage)
            if w.used_percent is not None and (now is None or not resetting(w, now))]
    return None if not used else max(0.0, 100.0 - max(used))


def unusable_until(view: AccountView, now: float) -> float | None:
    """When an enabled account that cannot take requests now will be able to (``math.inf`` when
    unknown); ``None`` when it is usable now."""
    waits: list[float] = []
    if view.cooldown is not None and view.cooldown.until > now:
        waits.append(view.cooldown.until)
    usage = view.usage
    full = [w.reset_at for w in windows_of(usage) if (w.used_percent or 0.0) >= 100.0]
    if usage is not None and usage.blocked:
        known = [t for t in full if t is not None] + ([usage.blocked_until] if usage.blocked_until else [])
        if known and max(known) <= now:
            pass  # the blocking window has reset: usable again (routing refetches)
        else:
            waits.append(max(known) if known else math.inf)
    elif (spent := [t for t in full if t is not None and t > now]):
        # A window at 100 % holds the account until it resets, blocked or not (routing's
        # available_at counts it the same way).
        waits.append(max(spent))
    return max(waits) if waits else None


@dataclass(frozen=True)
class PoolHealth:
    """What every surface says about the pool: ``status`` (see the module docstring), ``icon`` (the
    tray icon's state), ``words`` (lower case; a surface that starts a line with them capitalises
    the first letter), how many accounts can take a request, and when the first one comes back
    while none can."""

    status: Status
    icon: Health
    words: str
    usable: int
    total: int
    soonest_reset: float | None = None

    @property
    def line(self) -> str:
        """The words as a line of their own: ``Pool exhausted until 15:40 (in 23 min)``."""
        return self.words[:1].upper() + self.words[1:]


def _status(snapshot: Snapshot, enabled: list[AccountView], usable: list[AccountView]) -> tuple[Status, str]:
    """The status and its words (without a time)."""
    if not snapshot.running:
        return "stopped", HEALTH_WORDS["stopped"]
    if not snapshot.accounts:
        return "empty", HEALTH_WORDS["empty"]
    if not usable:
        return "exhausted", HEALTH_WORDS["exhausted"] if enabled else NONE_ON_WORDS
    if snapshot.config_problems:
        return "config", HEALTH_WORDS["config"]
    left = [percent_left(v.usage, snapshot.now) for v in usable]
    low = any(p is not None and p <= LOW_PERCENT_LEFT for p in left)
    if len(usable) < len(enabled) or low or any(
            v.account.state is AccountState.NEEDS_LOGIN for v in snapshot.accounts):
        return "degraded", HEALTH_WORDS["degraded"]  # cooling, at its limit, low or signed out
    if any(f.early for f in snapshot.forecasts):
        return "degraded", EARLY_WORDS
    return "healthy", HEALTH_WORDS["healthy"]


def pool_health(snapshot: Snapshot, tz: tzinfo | None = None) -> PoolHealth:
    """The pool's health and its words (local time unless ``tz`` is given). An empty pool is "no
    accounts" and a config problem "config problem" while some account can serve; an exhausted
    pool says until when ("pool exhausted until 15:40 (in 23 min)") when that is known."""
    now = snapshot.now
    enabled = [v for v in snapshot.accounts if v.account.state is AccountState.ENABLED]
    usable = [v for v in enabled if unusable_until(v, now) is None]
    status, words = _status(snapshot, enabled, usable)
    soonest = soonest_reset(snapshot) if status == "exhausted" else None
    if soonest is not None:
        words = f"{words} {until_text(soonest, now, tz)}"
    return PoolHealth(status, ICONS[status], words, len(usable), len(snapshot.accounts), soonest)


def health(snapshot: Snapshot) -> Health:
    """The tray icon's state: ``stopped`` when the proxy is not running; ``exhausted`` when accounts
    exist but none can take a request now; ``degraded`` when some account is cooling, low, at its
    limit or needs login, when there are none, or the config has problems; else ``healthy``."""
    return pool_health(snapshot).icon


def snapshot_of(
    accounts: Iterable[Account], usages: Mapping[int, Usage | None], cooldowns: Mapping[int, Cooldown],
    now: float, *, running: bool = True, config_problems: Iterable[str] = (),
    forecasts: Iterable[Forecast] = (),
) -> Snapshot:
    """A snapshot from what a surface read: the accounts, each one's usage as shown
    (:func:`tray.quota.usage.shown_usage`) and the cooldowns in force."""
    views = tuple(AccountView(a, usages.get(a.id), cooldowns.get(a.id)) for a in accounts)
    return Snapshot(now=now, running=running, proxy_url=None, accounts=views,
                    config_problems=tuple(config_problems), forecasts=tuple(forecasts))


def soonest_reset(snapshot: Snapshot) -> float | None:
    """When the first enabled account becomes usable again (``None`` if unknown or one is usable)."""
    waits = [unusable_until(v, snapshot.now) for v in snapshot.accounts
             if v.account.state is AccountState.ENABLED]
    if not waits or any(w is None for w in waits):
        return None
    finite = [w for w in waits if w is not None and math.isfinite(w)]
    return min(finite) if finite else None
