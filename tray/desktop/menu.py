"""What the tray menu shows, as plain data: :func:`build_menu` turns a :class:`Snapshot` of the pool
into a :class:`MenuModel`; :func:`health` names the icon's state; :func:`tooltip` its hover text.
The menu's top line is the pool's use of each window (:func:`pool_line`), with the forecast when the
pool runs out before its next reset; that also makes the icon *degraded*.

Pure: no GUI, no store, ``now`` comes in the snapshot. :mod:`tray.desktop.tray` renders the model with
pystray and hands the chosen item's ``action`` and ``arg`` back to the app.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import tzinfo
from enum import StrEnum
from typing import Literal

from tray.forecast.pace import Forecast, clock_text
from tray.models import Account, AccountState, Cooldown, Decision, Usage, Window

Health = Literal["healthy", "degraded", "exhausted", "stopped"]
LOW_PERCENT_LEFT = 10.0  # a window with this much or less left makes the account "low"


class Action(StrEnum):
    COPY_URL = "copy-url"
    MAKE_PRIMARY = "account.primary"
    MOVE_UP = "account.up"
    MOVE_DOWN = "account.down"
    ENABLE = "account.enable"
    DISABLE = "account.disable"
    RELOGIN = "account.relogin"
    REMOVE = "account.remove"
    ADD_BROWSER = "add.browser"
    ADD_DEVICE = "add.device"
    OPEN_WINDOW = "window.open"
    OPEN_USAGE = "window.usage"
    TOGGLE_AUTOSTART = "autostart.toggle"
    OPEN_CONFIG = "config.open"
    QUIT = "quit"


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


@dataclass(frozen=True)
class MenuItem:
    text: str
    action: Action | None = None
    arg: int | None = None
    enabled: bool = True
    checked: bool | None = None  # None: not a check item
    default: bool = False
    submenu: tuple[MenuItem, ...] = ()

    @property
    def separator(self) -> bool:
        return self.text == SEPARATOR.text and self.action is None


SEPARATOR = MenuItem("-", enabled=False)


@dataclass(frozen=True)
class MenuModel:
    items: tuple[MenuItem, ...]

    def find(self, text_start: str) -> MenuItem | None:
        """The first item (depth first) whose text starts with ``text_start``."""
        stack = list(reversed(self.items))
        while stack:
            item = stack.pop()
            if item.text.startswith(text_start):
                return item
            stack.extend(reversed(item.submenu))
        return None


def layout_key(items: tuple[MenuItem, ...]) -> tuple[object, ...]:
    """What a shown menu's items *are*: each item's action and account, nested like the menu.

    Two models with the same key differ only in texts, enabled and checked states, so the menu on
    screen can be updated in place, keeping every item (and the id a tray host clicks it by); a
    different key means an item now does something else, and the menu is built anew.
    """
    return tuple(
        ("-",) if item.separator
        else (item.action, item.arg, item.checked is None, item.default, layout_key(item.submenu))
        for item in items
    )


# --- time and quota wording ---------------------------------------------------------------------


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


def window_label(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return "?"
    if seconds >= 6 * 86400:
        return "wk"
    for size, unit in ((86400.0, "d"), (3600.0, "h"), (60.0, "m")):
        if seconds >= size:
            return f"{seconds / size:.1f}".removesuffix(".0") + unit
    return f"{seconds:.0f}s"


def _windows(usage: Usage | None) -> list[Window]:
    if usage is None:
        return []
    found = [w for w in (usage.primary, usage.secondary) if w is not None]
    return sorted(found, key=lambda w: w.window_seconds or math.inf)


def _reset_at(window: Window) -> float | None:
    return window.reset_at  # snapshots carry anchored usage (quota.usage_view fills reset_at)


def window_text(window: Window, now: float) -> str:
    label = window_label(window.window_seconds)
    used = "?" if window.used_percent is None else f"{round(max(0.0, min(100.0, window.used_percent)))}%"
    reset = _reset_at(window)
    return f"{label} {used}" + (f" ({duration(reset - now)})" if reset is not None else "")


def percent_left(usage: Usage | None) -> float | None:
    """The smallest share left over the account's windows, in percent (``None``: unknown)."""
    used = [w.used_percent for w in _windows(usage) if w.used_percent is not None]
    return None if not used else max(0.0, 100.0 - max(used))


def unusable_until(view: AccountView, now: float) -> float | None:
    """When an enabled account that cannot take requests now will be able to (``math.inf`` when
    unknown); ``None`` when it is usable now."""
    waits: list[float] = []
    if view.cooldown is not None and view.cooldown.until > now:
        waits.append(view.cooldown.until)
    usage = view.usage
    if usage is not None and usage.blocked:
        full = [_reset_at(w) for w in _windows(usage) if (w.used_percent or 0.0) >= 100.0]
        known = [t for t in full if t is not None] + ([usage.blocked_until] if usage.blocked_until else [])
        if known and max(known) <= now:
            pass  # the blocking window has reset: usable again (routing refetches)
        else:
            waits.append(max(known) if known else math.inf)
    return max(waits) if waits else None


def account_line(view: AccountView, now: float) -> str:
    account = view.account
    parts = [account.name]
    if account.plan:
        parts.append(account.plan)
    parts.append(account.role)
    if account.state is AccountState.DISABLED:
        parts.append("disabled")
    elif account.state is AccountState.NEEDS_LOGIN:
        parts.append("needs login")
    wins = _windows(view.usage)
    parts.extend(window_text(w, now) for w in wins)
    if not wins and account.state is AccountState.ENABLED:
        parts.append("quota unknown")
    if account.state is AccountState.ENABLED and view.cooldown is not None and view.cooldown.until > now:
        parts.append(f"cooling ({duration(view.cooldown.until - now)})")
    return " · ".join(parts)


def pool_line(snapshot: Snapshot, tz: tzinfo | None = None) -> str | None:
    """``Pool: 5h 62% · weekly 40% · 5h runs out 15:40, before the 16:10 reset``; ``None`` while no
    window's use is known."""
    known = [f for f in snapshot.forecasts if f.used_percent is not None]
    if not known:
        return None
    parts = [f"{f.window} {round(f.used_percent or 0.0)}%" for f in known]
    early = [f for f in known if f.early and f.runs_out_at is not None]
    if early:
        first = min(early, key=lambda f: f.runs_out_at or 0.0)
        now, out = snapshot.now, first.runs_out_at or snapshot.now
        said = "out now" if out <= now else f"runs out {clock_text(out, now, tz)}"
        if first.next_reset_at is not None:
            said += f", before the {clock_text(first.next_reset_at, now, tz)} reset"
        parts.append(f"{first.window} {said}" if len(known) > 1 else said)
    return "Pool: " + " · ".join(parts)


# --- the menu -----------------------------------------------------------------------------------


def _account_submenu(view: AccountView, index: int, count: int) -> tuple[MenuItem, ...]:
    account = view.account
    aid = account.id
    items = [
        MenuItem("Make primary", Action.MAKE_PRIMARY, aid, enabled=not account.primary),
        MenuItem("Move up", Action.MOVE_UP, aid, enabled=index > 0),
        MenuItem("Move down", Action.MOVE_DOWN, aid, enabled=index < count - 1),
        MenuItem("Enable", Action.ENABLE, aid)
        if account.state is AccountState.DISABLED
        else MenuItem("Disable", Action.DISABLE, aid),
    ]
    if account.state is AccountState.NEEDS_LOGIN:
        items.append(MenuItem("Re-login…", Action.RELOGIN, aid))
    items.append(MenuItem("Remove…", Action.REMOVE, aid))
    return tuple(items)


def build_menu(snapshot: Snapshot, tz: tzinfo | None = None) -> MenuModel:
    """The whole tray menu, in the order product.md §6 lists it, under the pool's line."""
    now = snapshot.now
    if snapshot.running and snapshot.proxy_url:
        head = MenuItem(f"Proxy {snapshot.proxy_url} (click to copy)", Action.COPY_URL)
    else:
        head = MenuItem("Proxy stopped", enabled=False)
    pool = pool_line(snapshot, tz)
    items = [] if pool is None else [MenuItem(pool, Action.OPEN_USAGE, enabled=snapshot.running)]
    items += [head, SEPARATOR]
    views = sorted(snapshot.accounts, key=lambda v: v.account.priority)
    for index, view in enumerate(views):
        items.append(
            MenuItem(account_line(view, now), submenu=_account_submenu(view, index, len(views)))
        )
    if not views:
        items.append(MenuItem("No accounts yet", enabled=False))
    items += [
        SEPARATOR,
        MenuItem("Add account (browser)…", Action.ADD_BROWSER, enabled=snapshot.running),
        MenuItem("Add account (device code)…", Action.ADD_DEVICE, enabled=snapshot.running),
        MenuItem("Open pool window…", Action.OPEN_WINDOW, enabled=snapshot.running, default=True),
        SEPARATOR,
        MenuItem(
            "Start at login",
            Action.TOGGLE_AUTOSTART,
            checked=bool(snapshot.autostart),
            enabled=snapshot.autostart is not None,
        ),
        MenuItem("Open config file", Action.OPEN_CONFIG),
        SEPARATOR,
        MenuItem("Quit", Action.QUIT),
    ]
    return MenuModel(tuple(items))


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


_HEALTH_WORDS: dict[Health, str] = {
    "healthy": "all good",
    "degraded": "some accounts need attention",
    "exhausted": "every account is out of quota",
    "stopped": "proxy stopped",
}


def tooltip(snapshot: Snapshot) -> str:
    """Hover text: the proxy URL, the pool's state and the last routing decision."""
    lines = [f"codex-pool: {_HEALTH_WORDS[health(snapshot)]}"]
    if snapshot.running and snapshot.proxy_url:
        lines.append(snapshot.proxy_url)
    pool = pool_line(snapshot)
    if pool is not None:
        lines.append(pool)
    last = snapshot.last_decision
    if last is not None:
        who = last.account_name or "no account"
        status = f" → {last.status}" if last.status is not None else ""
        age = snapshot.now - last.at
        when = "just now" if age < 60 else f"{duration(age)} ago"
        lines.append(f"Last: {who}, {last.reason}{status} ({when})")
    return "\n".join(lines)
