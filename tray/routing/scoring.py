"""Quota scores: how urgently an account's remaining quota should be spent.

"Burn first what you would otherwise waste": a window scores high when much capacity is left and
little time remains before it resets. Long windows get a capacity bonus (``sqrt(span / 30 min)``) and
a conservation damper when recovery takes longer than 4 h. An account is scored by its longest window,
times the worst pace factor of its shorter ("guard") windows. Pure functions; ages are in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tray.models import Usage, Window
from tray.quota.usage import is_complete, windows

CAPACITY_REF = 1800.0
CONSERVATION_REF = 14400.0
CONSERVATION_HORIZON = 1209600.0
CONSERVATION_CAP = 1 + math.log(CONSERVATION_HORIZON / CONSERVATION_REF)
HEALTH_RANGE = 0.2
HEALTH_BONUS = 0.12
HEALTH_PENALTY = 0.18
LOW_CAP = 0.03  # below 3 % left a window is nearly spent (routing floor, fast mode veto)
PACE_FLOOR = 1e-6

_WEIGHTS = {"pro": math.sqrt(20), "prolite": math.sqrt(5)}
_LABELS = {"pro": "pro20", "prolite": "pro5"}


def plan_weight(plan_type: str | None) -> float:
    """Pro (20× Plus) weighs √20, Pro-lite (5×) √5, every other plan 1."""
    return _WEIGHTS.get((plan_type or "").lower(), 1.0)


def plan_label(plan_type: str | None) -> str:
    if plan_type is None:
        return "unknown"
    return _LABELS.get(plan_type.lower(), plan_type)


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def health_factor(left: float, time: float) -> float:
    """+12 % at most when capacity leads time by 20 points, −18 % at most when it lags."""
    s = _clamp((left - time) / HEALTH_RANGE, -1.0, 1.0)
    return 1 + (HEALTH_BONUS if s >= 0 else HEALTH_PENALTY) * s


def _score(used: float, span: float | None, after: float | None, plan: float) -> float | None:
    left = 1 - _clamp(used, 0.0, 100.0) / 100
    # reset_after_seconds = 0 ("just reset") falls back to the full length: the whole window is ahead.
    secs = after if after is not None and after > 0 else span
    if secs is None:
        return None
    if span is None:
        return plan * left / secs
    time = _clamp(secs / span, 0.0, 1.0)
    pace = time if time > PACE_FLOOR else PACE_FLOOR
    conservation = _clamp(1 + math.log(secs / CONSERVATION_REF), 1.0, CONSERVATION_CAP)
    return plan * left * math.sqrt(span / CAPACITY_REF) / (pace * conservation) * health_factor(left, time)


def window_score(win: Window | None, plan: float = 1.0) -> float | None:
    """The per-window score (seed §4.3), or ``None`` without a used percentage or any timing."""
    if win is None or win.used_percent is None:
        return None
    return _score(win.used_percent, win.window_seconds, win.reset_after_seconds, plan)


def aged(win: Window, age: float) -> Window:
    if win.reset_after_seconds is None:
        return win
    after = max(0.0, win.reset_after_seconds - age)
    return Window(win.used_percent, win.window_seconds, after, win.reset_at)


def normalized(win: Window, plan: float = 1.0, age: float = 0.0) -> float | None:
    """``ln(score / score of a window whose capacity left equals its time left)``: > 0 means ahead of
    pace. ``None`` when it cannot be formed (nothing left, reset reached, incomplete window)."""
    used, span, after = win.used_percent, win.window_seconds, win.reset_after_seconds
    if used is None or span is None or after is None:
        return None
    after = max(0.0, after - age)
    raw = _score(used, span, after, plan)
    if raw is None or raw <= 0:
        return None
    base = _score((1 - _clamp(after / span, 0.0, 1.0)) * 100, span, after, plan)
    if base is None or base <= 0:
        return None
    return math.log(raw / base)


def guard_weight(main: Window, guard: Window, age: float) -> float:
    """How much of the guard's pace matters: 0 when it resets with the main window or later, 1 when
    the main window outlasts it by a full guard length."""
    main_left = max(0.0, (main.reset_after_seconds or 0.0) - age)
    guard_left = max(0.0, (guard.reset_after_seconds or 0.0) - age)
    return _clamp((main_left - guard_left) / (guard.window_seconds or 1.0), 0.0, 1.0)


def low_cap_floor(win: Window) -> float:
    left = 1 - _clamp(win.used_percent or 0.0, 0.0, 100.0) / 100
    return left / LOW_CAP if left < LOW_CAP else 1.0


@dataclass(frozen=True)
class WindowScore:
    label: str  # "rate.primary" / "rate.secondary"
    window: Window
    score: float


@dataclass(frozen=True)
class ScoreResult:
    """An account's score. ``score`` is ``None`` when unknown; a blocked account scores 0 and
    ``blocked_for`` says for how many seconds (``None``: no timer known). ``main`` and
    ``guard_factor`` are set when the multi-window reduction decided; ``deciding`` names the window
    that set the score."""

    score: float | None
    blocked: bool = False
    blocked_for: float | None = None
    deciding: str | None = None
    windows: tuple[WindowScore, ...] = ()
    main: float | None = None
    guard_factor: float | None = None


UNKNOWN = ScoreResult(None)


def blocked_for(usage: Usage, age: float, now: float | None = None) -> float | None:
    """Seconds until a blocked limit lifts: the 429 body's reset when known, else the most-used
    window's reset (primary on ties, then the sooner), aged by the cache age."""
    if now is not None and usage.blocked_until is not None:
        return max(0.0, usage.blocked_until - now)
    found = [
        (w.used_percent if w.used_percent is not None else -1.0, -i, w.reset_after_seconds)
        for i, (_, w) in enumerate(windows(usage))
        if w.reset_after_seconds is not None
    ]
    if not found:
        return None
    _, _, after = max(found, key=lambda f: (f[0], f[1]))  # most used; primary wins ties
    return max(0.0, (after or 0.0) - age)


def _reduce(scored: list[WindowScore], age: float) -> ScoreResult | None:
    full = [w for w in scored if is_complete(w.window)]
    if len(full) < 2:
        return None
    main = full[0]
    for w in full[1:]:
        if (w.window.window_seconds or 0) > (main.window.window_seconds or 0):
            main = w
    span = main.window.window_seconds or 0.0
    worst: tuple[float, str] | None = None
    for g in full:
        if g is main or (g.window.window_seconds or 0) >= span:
            continue
        pace = min(
            1.0, math.exp(guard_weight(main.window, g.window, age) * (normalized(g.window, 1.0, age) or 0.0))
        )
        factor = min(low_cap_floor(g.window), pace)
        if worst is None or factor < worst[0]:
            worst = (factor, g.label)
    if worst is None:
        return None
    factor, label = worst
    return ScoreResult(
        main.score * factor,
        deciding=label if factor < 1 else main.label,
        windows=tuple(scored),
        main=main.score,
        guard_factor=factor,
    )


def score(usage: Usage | None, age: float = 0.0, *, now: float | None = None) -> ScoreResult:
    """Score an account from its usage and the cache age (seconds). The main (longest) window's raw
    score is not aged (a stale reading of a long window barely moves); guards and blocked timers are."""
    if usage is None:
        return UNKNOWN
    if usage.blocked:
        return ScoreResult(0.0, blocked=True, blocked_for=blocked_for(usage, age, now))
    plan = plan_weight(usage.plan_type)
    scored = [
        WindowScore(label, w, s) for label, w in windows(usage) if (s := window_score(w, plan)) is not None
    ]
    if not scored:
        return UNKNOWN
    reduced = _reduce(scored, age)
    if reduced is not None:
        return reduced
    lowest = min(scored, key=lambda w: w.score)
    return ScoreResult(lowest.score, deciding=lowest.label, windows=tuple(scored))
