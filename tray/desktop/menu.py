"""What the tray menu shows, as plain data: :func:`build_menu` turns a :class:`Snapshot` of the pool
into a :class:`MenuModel`; :func:`health` names the icon's state; :func:`tooltip` its hover text.
The menu's top line is the pool's use of each window (:func:`pool_line`), with the forecast when the
pool runs out before its next reset; that also makes the icon *degraded*.

Pure: no GUI, no store, ``now`` comes in the snapshot. :mod:`tray.desktop.tray` renders the model with
pystray and hands the chosen item's ``action`` and ``arg`` back to the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from enum import StrEnum

from tray.forecast.pace import clock_text
from tray.health import (
    HEALTH_WORDS,
    AccountView,
    Snapshot,
    duration,
    health,
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
    label = window_name(window.window_seconds)
    used = "?" if window.used_percent is None else f"{round(max(0.0, min(100.0, window.used_percent)))}%"
    reset = window.reset_at
    return f"{label} {used}" + (f" ({duration(reset - now)})" if reset is not None else "")


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
    wins = windows_of(view.usage)
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
    elif snapshot.start_problem:
        head = MenuItem(f"Proxy cannot start: {snapshot.start_problem} · retrying, click to retry now",
                        Action.RETRY_START)
    else:
        head = MenuItem("Proxy stopped", enabled=False)
    pool = pool_line(snapshot, tz)
    items = [] if pool is None else [MenuItem(pool, Action.OPEN_USAGE, enabled=snapshot.running)]
    items.append(head)
    if snapshot.notice_problem:
        items.append(MenuItem(snapshot.notice_problem, enabled=False))
    items.append(SEPARATOR)
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


def tooltip(snapshot: Snapshot) -> str:
    """Hover text: the proxy URL, the pool's state and the last routing decision."""
    lines = [f"codex-pool: {HEALTH_WORDS[health(snapshot)]}"]
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
