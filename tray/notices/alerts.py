"""When to tell the user something: once-per-episode logic for desktop notifications.

:class:`Alerts` is fed two ways: engine events (:data:`tray.models.Event`, as they happen) and pool
snapshots (:class:`tray.desktop.menu.Snapshot`, polled by the tray, so a state another process wrote to the
shared store is noticed too). Either way it returns the :class:`Notice` texts to show now. An
*episode* is a stretch of one condition: the same set of config problems, one account needing
login, the pool being exhausted, one account running low, one window's forecast running out before
its reset. Each is announced once; when it ends, the next one is announced again. "Pool available
again" is only said after an exhaustion episode. A forecast episode ends only after the forecast
has said "lasts" for :data:`FORECAST_CLEAR` seconds, so a pace that wavers is not announced twice.

Pure: no I/O; times are parameters. Each kind can be switched off (:data:`KINDS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo

from tray.forecast.pace import warning
from tray.health import (
    LOW_PERCENT_LEFT,
    Health,
    Snapshot,
    health,
    percent_left,
    soonest_reset,
    until_text,
    unusable_until,
)
from tray.models import (
    AccountState,
    ConfigInvalid,
    Event,
    NeedsLogin,
    PoolAvailable,
    PoolExhausted,
    QuotaLow,
)

CONFIG_INVALID = "config-invalid"
NEEDS_LOGIN = "needs-login"
POOL_EXHAUSTED = "pool-exhausted"
POOL_AVAILABLE = "pool-available"
QUOTA_LOW = "quota-low"
FORECAST = "forecast"
KINDS: tuple[str, ...] = (CONFIG_INVALID, NEEDS_LOGIN, POOL_EXHAUSTED, POOL_AVAILABLE, QUOTA_LOW, FORECAST)
FORECAST_CLEAR = 900.0  # seconds the forecast must say "lasts" before its episode is over
DEFAULT_SWITCHES: Mapping[str, bool] = {kind: kind != QUOTA_LOW for kind in KINDS}  # quota-low is opt-in


OPEN_WINDOW = "window"  # action keys a notification's buttons carry (see Notice.actions)
OPEN_CONFIG = "config"
RELOGIN = "relogin:"  # + the account's id


@dataclass(frozen=True)
class Notice:
    """One notification. ``state`` is the pool state its icon shows (an exhausted pool's is not
    green); ``actions`` are its buttons as (key, label), for desktops that show them; ``fallback``
    is added to the body where they do not (how to do the same from the tray menu)."""

    kind: str
    title: str
    body: str
    state: Health = "degraded"
    actions: tuple[tuple[str, str], ...] = ()
    fallback: str = ""

    def plain(self) -> tuple[str, str]:
        """Title and body for a desktop without buttons: the fallback sentence joins the body."""
        return self.title, f"{self.body}\n{self.fallback}" if self.fallback else self.body


class Alerts:
    """Once-per-episode notification state. Not thread-safe: one owner thread feeds it."""

    def __init__(self, switches: Mapping[str, bool] | None = None, tz: tzinfo | None = None,
                 low_percent: float = LOW_PERCENT_LEFT) -> None:
        self._switches = dict(DEFAULT_SWITCHES)
        self.low_percent = low_percent  # quota-low fires at or under this % left
        self.set_switches(switches or {})
        self._tz = tz
        self._problems: tuple[str, ...] = ()
        self._needs_login: set[int] = set()
        self._low: set[int] = set()
        self._exhausted = False
        self._seen_exhausted = False  # a snapshot showed the exhaustion (so a snapshot may end it)
        self._early: dict[str, float] = {}  # window -> when its forecast last ran out early

    def set_switches(self, switches: Mapping[str, bool]) -> None:
        """Turn kinds on or off (unknown kinds are ignored; missing ones keep their value)."""
        for kind, on in switches.items():
            if kind in self._switches:
                self._switches[kind] = bool(on)

    def enabled(self, kind: str) -> bool:
        return self._switches.get(kind, False)

    def _say(self, notice: Notice) -> list[Notice]:
        return [notice] if self._switches.get(notice.kind) else []

    # --- one handler per condition ---------------------------------------------------------------

    def _config(self, problems: tuple[str, ...], path: str = "") -> list[Notice]:
        if problems == self._problems:
            return []
        self._problems = problems
        if not problems:
            return []
        where = f" ({path})" if path else ""
        lines = "\n".join(f"• {p}" for p in problems)
        return self._say(Notice(
            CONFIG_INVALID, "codex-pool: config problem",
            f"These settings fell back to their defaults{where}:\n{lines}",
            actions=((OPEN_CONFIG, "Open config file"),),
            fallback="Tray menu → Open config file.",
        ))

    def _login(self, account_id: int, name: str) -> list[Notice]:
        if account_id in self._needs_login:
            return []
        self._needs_login.add(account_id)
        return self._say(Notice(
            NEEDS_LOGIN, f"codex-pool: {name} needs a new login",
            "It is left out of routing until you sign in again.",
            actions=((f"{RELOGIN}{account_id}", "Re-login"), (OPEN_WINDOW, "Open pool window")),
            fallback="Tray menu → its line → Re-login….",
        ))

    def _exhaust(self, soonest: float | None, now: float) -> list[Notice]:
        if self._exhausted:
            return []
        self._exhausted = True
        until = "" if soonest is None else f" {until_text(soonest, now, self._tz)}"
        return self._say(Notice(
            POOL_EXHAUSTED, f"codex-pool: pool exhausted{until}",  # the menu's and the window's words
            "Every account is at its usage limit: requests get a 429 until "
            + ("then." if soonest is not None else "an account resets."),
            state="exhausted", actions=((OPEN_WINDOW, "Open pool window"),),
        ))

    def _available(self, name: str | None = None) -> list[Notice]:
        if not self._exhausted:
            return []
        self._exhausted = self._seen_exhausted = False
        body = f"{name} can take requests again." if name else "Requests are served again."
        return self._say(Notice(POOL_AVAILABLE, "codex-pool: quota available again", body, state="healthy"))

    def _quota_low(self, account_id: int, name: str, left: float) -> list[Notice]:
        if account_id in self._low:
            return []
        self._low.add(account_id)
        return self._say(Notice(QUOTA_LOW, f"codex-pool: {name} is low on quota", f"{left:.0f}% left.",
                                actions=((OPEN_WINDOW, "Open pool window"),)))

    # --- inputs ------------------------------------------------------------------------------------

    def on_event(self, event: Event, now: float) -> list[Notice]:
        """What to show for one engine event."""
        if isinstance(event, ConfigInvalid):
            return self._config(tuple(event.problems), event.path)
        if isinstance(event, NeedsLogin):
            return self._login(event.account_id, event.name)
        if isinstance(event, PoolExhausted):
            return self._exhaust(event.soonest_reset, now)
        if isinstance(event, PoolAvailable):
            return self._available(event.name)
        if isinstance(event, QuotaLow):
            return self._quota_low(event.account_id, event.name, event.percent_left)
        return []

    def on_config(self, problems: tuple[str, ...], path: str = "") -> list[Notice]:
        """The config was (re)loaded; no problems ends the episode."""
        return self._config(tuple(problems), path)

    def observe(self, snapshot: Snapshot) -> list[Notice]:
        """What to show for the pool's current state; also ends episodes that are over."""
        if not snapshot.running:
            return []
        notices: list[Notice] = []
        now = snapshot.now
        needing = {v.account.id: v.account.name for v in snapshot.accounts
                   if v.account.state is AccountState.NEEDS_LOGIN}
        self._needs_login &= set(needing)
        for account_id, name in needing.items():
            notices += self._login(account_id, name)
        state = health(snapshot)
        if state == "exhausted":
            self._seen_exhausted = True
            notices += self._exhaust(soonest_reset(snapshot), now)
        elif self._exhausted and self._seen_exhausted:
            back = sorted((v for v in snapshot.accounts if v.account.state is AccountState.ENABLED
                           and unusable_until(v, now) is None), key=lambda v: v.account.priority)
            notices += self._available(back[0].account.name if back else None)
        low: dict[int, tuple[str, float]] = {}
        for view in snapshot.accounts:
            left = percent_left(view.usage, now)
            if view.account.state is AccountState.ENABLED and left is not None and left <= self.low_percent:
                low[view.account.id] = (view.account.name, left)
        self._low &= set(low)
        if state != "exhausted":  # while exhausted, "low" says nothing new
            for account_id, (name, left) in low.items():
                notices += self._quota_low(account_id, name, left)
            notices += self._forecasts(snapshot)
        return notices

    def _forecasts(self, snapshot: Snapshot) -> list[Notice]:
        now, notices = snapshot.now, []
        # Already out is the exhaustion's news; this one is about running out later.
        early = {f.window: f for f in snapshot.forecasts if f.early and (f.runs_out_at or now) > now}
        for window, fc in early.items():
            if window not in self._early:
                notices += self._say(Notice(FORECAST, "codex-pool: the pool may run out before it resets",
                                            warning(fc, now, self._tz),
                                            actions=((OPEN_WINDOW, "Open pool window"),)))
            self._early[window] = now
        for window, seen in list(self._early.items()):
            if window not in early and now - seen >= FORECAST_CLEAR:
                del self._early[window]
        return notices
