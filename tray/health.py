"""The pool's health, in one place: what the tray icon, the menu, the tooltip, the window API,
``codex-pool status`` and the notices say about the pool and its accounts.

Pure: :class:`Snapshot` is the pool as the surfaces see it (``now`` inside it); no store, no GUI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from tray.forecast.pace import Forecast
from tray.models import Account, AccountState, Cooldown, Decision, Usage, Window

Health = Literal["healthy", "degraded", "exhausted", "stopped"]
LOW_PERCENT_LEFT = 10.0  # a window with this much or less left makes the account "low"
HEALTH_WORDS: dict[Health, str] = {
    "healthy": "all good",
    "degraded": "some accounts need attention",
    "exhausted": "every account is out of quota",
    "stopped": "proxy stopped",
}


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


def duration(seconds: float) -> str:
    """``42m``, ``1h 10m``, ``1d 5h``, ``3d``: a short human span (rounded up to the minute)."""
    minutes = max(0, math.ceil(seconds / 60))
    if minutes < 1:
        return "now"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours and days < 3 else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m"


def windows_of(usage: Usage | None) -> list[Window]:
    if usage is None:
        return []
    found = [w for w in (usage.primary, usage.secondary) if w is not None]
    return sorted(found, key=lambda w: w.window_seconds or math.inf)


def percent_left(usage: Usage | None) -> float | None:
    """The smallest share left over the account's windows, in percent (``None``: unknown)."""
    used = [w.used_percent for w in windows_of(usage) if w.used_percent is not None]
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


def health(snapshot: Snapshot) -> Health:
    """``stopped`` when the proxy is not running; ``exhausted`` when accounts exist but none can take
    a request now; ``degraded`` when some account is cooling, low, blocked or needs login (or there
    are none, or the config has problems); else ``healthy``."""
    if not snapshot.running:
        return "stopped"
    now = snapshot.now
    enabled = [v for v in snapshot.accounts if v.account.state is AccountState.ENABLED]
    usable = [v for v in enabled if unusable_until(v, now) is None]
    if snapshot.accounts and not usable:
        return "exhausted"
    if not snapshot.accounts or snapshot.config_problems or len(usable) < len(enabled):
        return "degraded"
    if any(f.early for f in snapshot.forecasts):  # at this pace the pool runs out before a reset
        return "degraded"
    if any(v.account.state is AccountState.NEEDS_LOGIN for v in snapshot.accounts):
        return "degraded"
    left = [percent_left(v.usage) for v in usable]
    if any(p is not None and p <= LOW_PERCENT_LEFT for p in left):
        return "degraded"
    return "healthy"


def soonest_reset(snapshot: Snapshot) -> float | None:
    """When the first enabled account becomes usable again (``None`` if unknown or one is usable)."""
    waits = [unusable_until(v, snapshot.now) for v in snapshot.accounts
             if v.account.state is AccountState.ENABLED]
    if not waits or any(w is None for w in waits):
        return None
    finite = [w for w in waits if w is not None and math.isfinite(w)]
    return min(finite) if finite else None
