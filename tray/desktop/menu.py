"""What the tray menu shows, as plain data: :func:`build_menu` turns a :class:`Snapshot` of the pool
into a :class:`MenuModel`; :func:`tooltip` is the icon's hover text (its state is
:func:`tray.health.health`).
The menu's top line is the pool's health in the words every surface uses
(:func:`tray.health.pool_health`: "Pool exhausted until 15:40 (in 23 min)", "Config problem", ...);
under it the pool's use of each window (:func:`pool_line`), with the forecast when the pool runs out
before its next reset (that also makes the icon *degraded*).

Pure: no GUI, no store, ``now`` comes in the snapshot. :mod:`tray.desktop.tray` renders the model with
pystray and hands the chosen item's ``action`` and ``arg`` back to the app.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import tzinfo
from enum import StrEnum

from tray.forecast.pace import clock_text
from tray.health import (
    AccountView,
    PoolHealth,
    Snapshot,
    duration,
    pool_health,
    resetting,
    unusable_until,
    windows_of,
)
from tray.models import AccountState, Window
from tray.quota.usage import window_name


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
    RETRY_START = "proxy.retry"
    QUIT = "quit"


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


def window_text(window: Window, now: float) -> str:
    """``5h 35 % used (resets in 1 h 10 min)``; ``5h resetting, checking…`` once the reset passed
    (the new window's use is not known until fresh usage arrives: never an invented 0 %)."""
    label = window_name(window.window_seconds)
    if resetting(window, now):
        return f"{label} resetting, checking…"
    used = "?" if window.used_percent is None else f"{round(max(0.0, min(100.0, window.used_percent)))} %"
    reset = window.reset_at
    until = f" (resets in {duration(reset - now)})" if reset is not None else ""
    return f"{label} {used} used{until}"


def short_name(name: str, limit: int = 32) -> str:
    """A long address cut in the middle, keeping its start and its domain, so the menu stays
    narrow (the window shows it whole)."""
    if len(name) <= limit:
        return name
    user, at, domain = name.rpartition("@")
    if not at or len(domain) > limit // 2:
        return name[: limit - 1] + "…"
    return f"{user[: limit - len(domain) - 2]}…@{domain}"


def _held(view: AccountView, now: float, tz: tzinfo | None) -> str | None:
    """Why an enabled account cannot serve now, with when it comes back: ``usage limit reached,
    resets 15:40`` (a window at its limit), ``rate limited, back at 15:40`` (a 429 without quota
    news), ``resting after an error, back at 15:40``; ``None`` when it can serve."""
    back = unusable_until(view, now)
    if back is None:
        return None
    when = clock_text(back, now, tz) if math.isfinite(back) else None
    at_limit = view.usage is not None and (view.usage.blocked or any(
        (w.used_percent or 0.0) >= 100.0 and not resetting(w, now) for w in windows_of(view.usage)))
    if at_limit:
        return "usage limit reached" + (f", resets {when}" if when else "")
    cooling = view.cooldown
    what = "rate limited" if cooling is not None and cooling.status == 429 else "resting after an error"
    return what + (f", back at {when}" if when else "")


def account_line(view: AccountView, now: float, tz: tzinfo | None = None, *,
                 served_last: bool = False) -> str:
    """``work@x.com · plus · primary · 5h 35 % used (resets in 1 h 10 min) · weekly 12 % used
    (resets in 3 d)``, with the state when it is not serving and a mark on the account that served
    the last request."""
    account = view.account
    parts = [short_name(account.name)]
    if account.plan:
        parts.append(account.plan)
    parts.append(account.role)
    wins = windows_of(view.usage)
    held = None
    if account.state is AccountState.DISABLED:
        parts.append("disabled")
    elif account.state is AccountState.NEEDS_LOGIN:
        parts.append("needs login")
    else:
        held = _held(view, now, tz)
        if held is not None:
            parts.append(held)
        if not wins:
            parts.append("quota not known yet")
    # a window at its limit is what "usage limit reached, resets ..." already says
    parts.extend(window_text(w, now) for w in wins
                 if held is None or (w.used_percent or 0.0) < 100.0 or resetting(w, now))
    if served_last:
        parts.append("served last")
    return " · ".join(parts)


def pool_line(snapshot: Snapshot, tz: tzinfo | None = None) -> str | None:
    """``Pool: 5h 62 % used · weekly 40 % used · 5h runs out 15:40, before the 16:10 reset``;
    ``None`` while no window's use is known."""
    known = [f for f in snapshot.forecasts if f.used_percent is not None]
    if not known:
        return None
    parts = [f"{f.window} {round(f.used_percent or 0.0)} % used" for f in known]
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
    """What can be done with one account. One that needs a new login offers Re-login first, and
    neither Disable nor Make primary (it cannot serve until it is signed in again)."""
    account = view.account
    aid = account.id
    order = [
        MenuItem("Move up", Action.MOVE_UP, aid, enabled=index > 0),
        MenuItem("Move down", Action.MOVE_DOWN, aid, enabled=index < count - 1),
    ]
    if account.state is AccountState.NEEDS_LOGIN:
        return (MenuItem("Re-login…", Action.RELOGIN, aid), *order, MenuItem("Remove…", Action.REMOVE, aid))
    toggle = (MenuItem("Enable", Action.ENABLE, aid) if account.state is AccountState.DISABLED
              else MenuItem("Disable", Action.DISABLE, aid))
    return (MenuItem("Make primary", Action.MAKE_PRIMARY, aid, enabled=not account.primary), *order, toggle,
            MenuItem("Remove…", Action.REMOVE, aid))


def status_item(pool: PoolHealth) -> MenuItem:
    """The menu's top line: the pool's health in the words every surface uses. A config problem's
    line opens the config file; the others open the pool window."""
    if pool.status == "config":
        return MenuItem(f"{pool.line} (click to open the config file)", Action.OPEN_CONFIG)
    return MenuItem(pool.line, Action.OPEN_WINDOW)


def build_menu(snapshot: Snapshot, tz: tzinfo | None = None) -> MenuModel:
    """The whole tray menu, in the order product.md §6 lists it, under the pool's health and use."""
    now = snapshot.now
    pool = pool_health(snapshot, tz)
    items = [] if pool.status == "stopped" else [status_item(pool)]
    if snapshot.running and snapshot.proxy_url:
        head = MenuItem(f"Proxy {snapshot.proxy_url} (click to copy)", Action.COPY_URL)
    elif snapshot.start_problem:
        head = MenuItem(f"Proxy cannot start: {snapshot.start_problem} · retrying, click to retry now",
                        Action.RETRY_START)
    else:
        head = MenuItem("Proxy stopped", enabled=False)
    use = pool_line(snapshot, tz)
    items += [] if use is None else [MenuItem(use, Action.OPEN_USAGE, enabled=snapshot.running)]
    items.append(head)
    if snapshot.notice_problem:
        items.append(MenuItem(snapshot.notice_problem, enabled=False))
    items.append(SEPARATOR)
    views = sorted(snapshot.accounts, key=lambda v: v.account.priority)
    last = snapshot.last_decision
    served = last.account_id if last is not None and last.status is not None and last.status < 400 else None
    for index, view in enumerate(views):
        line = account_line(view, now, tz, served_last=view.account.id == served)
        items.append(MenuItem(line, submenu=_account_submenu(view, index, len(views))))
    if not views:
        items.append(MenuItem("No accounts yet: add one below", enabled=False))
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


def tooltip(snapshot: Snapshot, tz: tzinfo | None = None) -> str:
    """Hover text: the pool's health (the menu's words), the proxy URL, the pool's use and the last
    routing decision."""
    lines = [f"codex-pool: {pool_health(snapshot, tz).words}"]
    if snapshot.running and snapshot.proxy_url:
        lines.append(snapshot.proxy_url)
    use = pool_line(snapshot, tz)
    if use is not None:
        lines.append(use)
    last = snapshot.last_decision
    if last is not None:
        who = last.account_name or "no account"
        status = f" → {last.status}" if last.status is not None else ""
        age = snapshot.now - last.at
        when = "just now" if age < 60 else f"{duration(age)} ago"
        lines.append(f"Last: {who}, {last.reason}{status} ({when})")
    return "\n".join(lines)
