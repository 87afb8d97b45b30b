"""The pool seen through its usage history: where each account's window stood at a time, and the
pool's used % of a window.

Pure functions over :class:`~tray.models.UsageSample` rows; times are parameters.

- An account's **level** at a time is its last sample by then. A window whose reset time has passed
  is back at 0 % and its timer has not started (it starts with the next use); so is a window that
  was never used (its reset stays a full length ahead).
- The pool's **used %** of a window is the capacity-weighted mean of its accounts' levels, with the
  routing model's plan weights (:func:`tray.routing.scoring.plan_weight`), over the accounts whose level is
  known at that time.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tray.models import RESET_JITTER, Account, AccountState, UsageSample
from tray.quota.usage import window_name
from tray.routing.scoring import plan_weight


@dataclass(frozen=True)
class Level:
    """One account's window at one time. ``reset_at`` is ``None`` when no reset is running: the
    window is untouched (its timer starts with the next use) or its reset is unknown."""

    used_percent: float
    reset_at: float | None
    started: bool = True  # False: an untouched window, whose timer starts with the next use


@dataclass(frozen=True)
class Member:
    """One account in the pool's view of one window: its weight and its samples, oldest first."""

    account_id: int
    weight: float
    window_seconds: float
    samples: tuple[UsageSample, ...]


def untouched(sample: UsageSample) -> bool:
    """Nothing used and the timer not started: the reset stays a full length after the sample."""
    return (
        sample.used_percent <= 0.0
        and sample.reset_at is not None
        and abs(sample.reset_at - sample.at - sample.window_seconds) <= RESET_JITTER
    )


def level_at(samples: Sequence[UsageSample], t: float) -> Level | None:
    """Where the window of ``samples`` (oldest first) stood at ``t``; ``None`` before its first sample."""
    index = bisect_right(samples, t, key=lambda s: s.at)
    if index == 0:
        return None
    last = samples[index - 1]
    if untouched(last) or (last.reset_at is not None and last.reset_at <= t):
        return Level(0.0, None, started=False)
    return Level(max(0.0, min(100.0, last.used_percent)), last.reset_at)


def pool_used(members: Iterable[Member], t: float) -> float | None:
    """The pool's used % at ``t``: the weighted mean over the members whose level is known."""
    total = weight = 0.0
    for member in members:
        level = level_at(member.samples, t)
        if level is not None and member.weight > 0:
            total += member.weight * level.used_percent
            weight += member.weight
    return total / weight if weight else None


def members(
    accounts: Iterable[Account], samples: Iterable[UsageSample]
) -> dict[str, list[Member]]:
    """The pool's members per window label (``5h``, ``weekly``...): every account in routing
    (enabled; a cooling account still counts) that has samples of that window."""
    routed = {a.id: a for a in accounts if a.state is AccountState.ENABLED}
    grouped: dict[tuple[int, float], list[UsageSample]] = {}
    for sample in samples:
        if sample.account_id in routed:
            grouped.setdefault((sample.account_id, sample.window_seconds), []).append(sample)
    out: dict[str, list[Member]] = {}
    for (account_id, seconds), found in sorted(grouped.items()):
        found.sort(key=lambda s: s.at)
        weight = plan_weight(routed[account_id].plan)
        out.setdefault(window_name(seconds), []).append(Member(account_id, weight, seconds, tuple(found)))
    return out


def grid(start: float, end: float, points: int) -> list[float]:
    """``points`` evenly spaced times from ``start`` to ``end`` (both included)."""
    if points < 2 or end <= start:
        return [end]
    step = (end - start) / (points - 1)
    return [start + i * step for i in range(points - 1)] + [end]


def series(samples: Sequence[UsageSample], times: Sequence[float]) -> list[float | None]:
    """One account's used % at each of ``times`` (``None`` before its first sample)."""
    out: list[float | None] = []
    for t in times:
        level = level_at(samples, t)
        out.append(None if level is None else level.used_percent)
    return out


def pool_series(window_members: Sequence[Member], times: Sequence[float]) -> list[float | None]:
    """The pool's used % at each of ``times``."""
    return [pool_used(window_members, t) for t in times]


def resets(samples: Sequence[UsageSample], since: float, until: float) -> list[float]:
    """The reset times the samples name that fall from ``since`` to ``until`` (each once)."""
    times = sorted(s.reset_at for s in samples
                   if s.reset_at is not None and not untouched(s) and since <= s.reset_at <= until)
    found: list[float] = []
    for at in times:
        if not found or at - found[-1] >= RESET_JITTER:
            found.append(at)
    return found


def by_window(samples: Iterable[UsageSample]) -> Mapping[str, list[UsageSample]]:
    """Samples grouped by window label, oldest first in each."""
    out: dict[str, list[UsageSample]] = {}
    for sample in sorted(samples, key=lambda s: s.at):
        out.setdefault(window_name(sample.window_seconds), []).append(sample)
    return out
