"""Where the pool is heading: its pace, and when it runs out at that pace.

Pure functions over :mod:`tray.forecast.pool` members; ``now`` is always a parameter.

- An account's **pace** is its use per hour in its current window over the last hour, or since
  the window began when that is shorter, from at least two samples :data:`MIN_SPAN` seconds apart
  (the last sample before the hour tells where the window stood when it began). A window with no
  sample in the last hour is idle (pace 0). The pool's pace is the weighted mean of its accounts'
  paces (an account without one counts as idle), in pool percent per hour; unknown when no
  account has one.
- The **forecast** spends the pool's headroom at that pace, the account that resets soonest first
  (quota that would otherwise be wasted goes first, as routing does), and gives each account its
  whole capacity back when its window resets; a window that came back starts its timer when it is
  next used. The pool **runs out** when no account has headroom left. ``next_reset_at`` is the
  first reset after that moment (capacity coming back), or without a runout the pool's next reset.
  Only the next :func:`horizon` is looked at: beyond a window's length a one-hour pace says little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from tray.forecast.pool import Level, Member, level_at, pool_used
from tray.models import RESET_JITTER, UsageSample

LOOKBACK = 3600.0  # seconds of history the pace is taken over
MIN_SPAN = 20.0  # seconds between the two samples a pace needs at least
RESET_DROP = 2.0  # a fall in used % by more than this many points is a reset, not rounding
MAX_STEPS = 10_000  # a bound on the forecast's steps (each is a reset or an account running dry)
_EPS = 1e-9


@dataclass(frozen=True)
class Forecast:
    """One window of the pool: used % now, pace (% per hour), when it runs out, the next reset."""

    window: str  # "5h", "weekly", ...
    used_percent: float | None
    pace_percent_per_hour: float | None
    runs_out_at: float | None  # epoch seconds; ``None``: not within the horizon (or no pace)
    next_reset_at: float | None  # epoch seconds; ``None``: no reset known
    accounts: int = 0  # accounts whose level is known

    @property
    def early(self) -> bool:
        """The pool runs out (or is out) before its next reset."""
        return self.runs_out_at is not None and (
            self.next_reset_at is None or self.runs_out_at < self.next_reset_at
        )


# --- pace ------------------------------------------------------------------------------------------


def _new_window(prev: UsageSample, cur: UsageSample) -> bool:
    if cur.used_percent < prev.used_percent - RESET_DROP:
        return True
    if prev.reset_at is None:
        return False
    if cur.at >= prev.reset_at:
        return True
    return cur.reset_at is not None and cur.reset_at - prev.reset_at > RESET_JITTER


def current_window(samples: Sequence[UsageSample], now: float) -> tuple[UsageSample, ...]:
    """The samples (oldest first, up to ``now``) of the window that is running at ``now``."""
    upto = [s for s in samples if s.at <= now]
    if not upto:
        return ()
    last = upto[-1]
    if last.reset_at is not None and last.reset_at <= now:
        return ()  # it reset after its last sample: nothing of the new window seen yet
    start = 0
    for k in range(1, len(upto)):
        if _new_window(upto[k - 1], upto[k]):
            start = k
    window = upto[start:]
    if last.reset_at is not None:  # it began a length before its reset; anything older is another window
        began = last.reset_at - last.window_seconds - RESET_JITTER
        window = [s for s in window if s.at >= began]
    return tuple(window)


def account_pace(
    samples: Sequence[UsageSample], now: float, lookback: float = LOOKBACK, min_span: float = MIN_SPAN
) -> float | None:
    """Percent of this account's window used per hour lately (see the module docstring)."""
    window = current_window(samples, now)
    if not window:
        return None
    start = now - lookback
    if window[-1].at <= start:
        return 0.0  # nothing seen for the whole lookback: idle
    before = [k for k, s in enumerate(window) if s.at <= start]
    base, last = window[before[-1] if before else 0], window[-1]
    if last.at - base.at < min_span:
        return None
    hours = (now - max(base.at, start)) / 3600.0
    if hours <= 0:
        return None
    return max(0.0, last.used_percent - base.used_percent) / hours


def pool_pace(members: Sequence[Member], now: float, lookback: float = LOOKBACK) -> float | None:
    """The pool's use per hour, in pool percent: the weighted mean of the paces of the members
    whose level is known (a member without a pace counts as idle); ``None`` when none has one."""
    weight = total = 0.0
    known = False
    for member in members:
        if member.weight <= 0 or level_at(member.samples, now) is None:
            continue
        pace = account_pace(member.samples, now, lookback)
        weight += member.weight
        if pace is not None:
            known = True
            total += member.weight * pace
    return total / weight if known and weight else None


# --- runout ----------------------------------------------------------------------------------------


@dataclass
class _Slot:
    headroom: float  # weight × percent left
    capacity: float  # weight × 100
    reset_at: float | None
    length: float
    waiting: bool  # untouched: the timer starts when it is first used


def _slots(levels: Sequence[tuple[float, Level, float]]) -> list[_Slot]:
    return [
        _Slot(weight * (100.0 - level.used_percent), weight * 100.0, level.reset_at, length,
              waiting=not level.started)
        for weight, level, length in levels
        if weight > 0
    ]


def _next_reset(slots: Sequence[_Slot], after: float) -> float | None:
    found = [s.reset_at for s in slots if s.reset_at is not None and s.reset_at > after]
    return min(found) if found else None


def runs_out(
    levels: Sequence[tuple[float, Level, float]], now: float, pace: float | None, horizon: float
) -> tuple[float | None, float | None]:
    """``(runs_out_at, next_reset_at)`` for members given as ``(weight, level, window length)``,
    spending ``pace`` pool percent per hour (see the module docstring)."""
    slots = _slots(levels)
    capacity = sum(s.capacity for s in slots)
    if not slots:
        return None, None
    rate = max(0.0, pace or 0.0) * (capacity / 100.0) / 3600.0  # weight × percent per second
    t = now
    for _ in range(MAX_STEPS):
        for slot in slots:
            if slot.reset_at is not None and slot.reset_at <= t:
                slot.headroom, slot.reset_at, slot.waiting = slot.capacity, None, True
        open_slots = [s for s in slots if s.headroom > _EPS]
        if not open_slots:
            return t, _next_reset(slots, t)
        if rate <= 0:
            return None, _next_reset(_slots(levels), now)
        target = min(open_slots, key=lambda s: math.inf if s.reset_at is None else s.reset_at)
        if target.reset_at is None and target.waiting:
            target.reset_at, target.waiting = t + target.length, False  # its timer starts now
        empty_at = t + target.headroom / rate
        upcoming = _next_reset(slots, t)
        if min(empty_at, upcoming or math.inf) - now > horizon:
            return None, _next_reset(_slots(levels), now)
        if upcoming is not None and upcoming < empty_at:
            target.headroom -= rate * (upcoming - t)
            t = upcoming
        else:
            target.headroom = 0.0
            t = empty_at
    return None, _next_reset(_slots(levels), now)


def horizon(members: Sequence[Member]) -> float:
    """How far ahead a forecast looks: the longest window's length."""
    return max((m.window_seconds for m in members), default=0.0)


def forecast(window: str, members: Sequence[Member], now: float, lookback: float = LOOKBACK) -> Forecast:
    """The pool's forecast for one window at ``now``."""
    levels = [(m.weight, level, m.window_seconds) for m in members
              if (level := level_at(m.samples, now)) is not None and m.weight > 0]
    if not levels:
        return Forecast(window, None, None, None, None, 0)
    pace = pool_pace(members, now, lookback)
    out_at, next_reset = runs_out(levels, now, pace, horizon(members))
    return Forecast(window, pool_used(members, now), pace, out_at, next_reset, len(levels))


# --- words -----------------------------------------------------------------------------------------

WINDOW_WORDS = {"5h": "5-hour", "weekly": "weekly"}


def window_words(window: str) -> str:
    return WINDOW_WORDS.get(window, window)


def clock_text(at: float, now: float, tz: tzinfo | None = None) -> str:
    """``15:40`` today, else ``Tue 09:00`` (local time unless ``tz`` is given)."""
    when = datetime.fromtimestamp(at, tz)
    if when.date() == datetime.fromtimestamp(now, tz).date():
        return when.strftime("%H:%M")
    return when.strftime("%a %H:%M")


def span_text(seconds: float) -> str:
    """``30 min``, ``1 h 10 min``, ``2 d 4 h``: a span rounded to the minute."""
    minutes = max(0, round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def sentence(fc: Forecast, now: float, tz: tzinfo | None = None) -> str:
    """The forecast in one sentence, as the Usage page, the tray and ``status`` say it."""
    name = f"The pool's {window_words(fc.window)} quota"
    if fc.used_percent is None:
        return f"{name}: not known yet."
    if fc.runs_out_at is not None and fc.runs_out_at <= now:
        back = f"; it comes back at {clock_text(fc.next_reset_at, now, tz)}" if fc.next_reset_at else ""
        return f"{name} is used up{back}."
    if fc.runs_out_at is not None:
        out = clock_text(fc.runs_out_at, now, tz)
        if fc.next_reset_at is None:
            return f"At this pace the pool's {window_words(fc.window)} quota runs out at {out}."
        ahead = span_text(fc.next_reset_at - fc.runs_out_at)
        return (f"At this pace the pool's {window_words(fc.window)} quota runs out at {out}, "
                f"{ahead} before the next reset at {clock_text(fc.next_reset_at, now, tz)}.")
    if fc.pace_percent_per_hour is None:
        return f"{name}: no pace yet (it needs two quota readings at least {MIN_SPAN:.0f} s apart)."
    if fc.next_reset_at is not None:
        return (f"At this pace the pool's {window_words(fc.window)} quota lasts until the next reset "
                f"at {clock_text(fc.next_reset_at, now, tz)}.")
    return f"At this pace the pool's {window_words(fc.window)} quota lasts."


def warning(fc: Forecast, now: float, tz: tzinfo | None = None) -> str:
    """The notification's text for an early runout."""
    out = clock_text(fc.runs_out_at or now, now, tz)
    reset = f" ({clock_text(fc.next_reset_at, now, tz)})" if fc.next_reset_at is not None else ""
    return (f"At this pace the pool's {window_words(fc.window)} quota runs out at {out}, "
            f"before the next reset{reset}.")
