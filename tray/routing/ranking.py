"""Candidate ranking: which account to try first, and in which order to fail over.

Ranking is quota-aware priority routing: accounts with a known positive score come first (highest
score first, priority breaking ties), then accounts whose score is unknown (priority order, warmed in
the background), then exhausted and blocked ones. Sticky sessions and dormant-window touches adjust
the front of that order; every candidate always stays in it as failover. Pure: ``now`` is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tray.models import Account, CandidateScore, Config, Cooldown, Usage
from tray.quota.usage import UsageView, is_dormant, missing_view, windows
from tray.routing.scoring import UNKNOWN, ScoreResult, blocked_for, score
from tray.routing.scoring import plan_weight as plan_weight  # re-exported: routing is the public face
from tray.routing.scoring import window_score as window_score

SWITCH_MARGIN = 0.35
MODES = ("auto", "always", "disabled")
DORMANT_MODES = ("always", "new-session-only", "disabled")

_POSITIVE, _UNKNOWN, _EXHAUSTED, _BLOCKED = range(4)


@dataclass(frozen=True)
class RoutingSettings:
    """The routing keys of the config, with the same values."""

    fast_mode: str = "auto"
    fast_mode_bias: float = 0.0
    sticky_mode: str = "auto"
    sticky_strength: float = 1.0
    dormant_touch: str = "always"

    @classmethod
    def from_config(cls, config: Config) -> RoutingSettings:
        """The five routing keys of ``config`` (derived once per config, not per request)."""
        return cls(
            fast_mode=config.fast_mode,
            fast_mode_bias=config.fast_mode_bias,
            sticky_mode=config.sticky_mode,
            sticky_strength=config.sticky_strength,
            dormant_touch=config.dormant_touch,
        )


@dataclass(frozen=True)
class Ranking:
    """``order``: account ids in try order (every candidate). ``scores``/``details``: one per
    candidate, in that order. ``warm``: accounts whose usage is not fresh (fetch in background)."""

    order: tuple[int, ...]
    reason: str
    scores: tuple[CandidateScore, ...]
    warm: tuple[int, ...]
    sticky_kept: bool = False
    details: tuple[ScoreResult, ...] = ()


def switch_margin(base: float, best: float, strength: float) -> float:
    """How far ahead another account must be to pull a sticky session away (``auto`` mode): about
    35 % × strength for close scores, down to 17.5 % × strength for very different ones."""
    return SWITCH_MARGIN * strength * (0.5 + 0.5 * min(base, best) / max(base, best, 0.001))


def dormant_labels(usage: Usage | None) -> tuple[str, ...]:
    """Labels of the untouched windows (nothing used, timer not started)."""
    return tuple(label for label, w in windows(usage) if is_dormant(w))


def pending_touches(usage: Usage | None, touched: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Dormant windows not touched recently (``touched``: labels with an unexpired touch row)."""
    return tuple(label for label in dormant_labels(usage) if label not in touched)


def touch_reason(labels: Sequence[str]) -> str:
    if len(labels) == 1:
        return f"touch dormant {labels[0]}"
    return f"touch dormant windows ({', '.join(labels)})" if labels else "untouched dormant window"


@dataclass(frozen=True)
class _Entry:
    account: Account
    view: UsageView
    result: ScoreResult
    tier: int
    pending: tuple[str, ...]

    @property
    def value(self) -> float:
        return self.result.score or 0.0

    @property
    def touch_rank(self) -> float:
        """The longest pending dormant window: touching a weekly window first saves the most."""
        spans = [w.window_seconds or 0.0 for label, w in windows(self.view.usage) if label in self.pending]
        return max(spans, default=0.0)


def _tier(result: ScoreResult) -> int:
    if result.blocked:
        return _BLOCKED
    if result.score is None:
        return _UNKNOWN
    return _POSITIVE if result.score > 0 else _EXHAUSTED


def _entry(account: Account, view: UsageView, touched: frozenset[str], now: float) -> _Entry:
    result = score(view.usage, view.age(now), now=now) if view.usable else UNKNOWN
    tier = _tier(result)
    pending = pending_touches(view.usage, touched) if tier == _POSITIVE else ()
    return _Entry(account, view, result, tier, pending)


def _role(entry: _Entry) -> str:
    return "core" if entry.account.primary else "pool"


def _plain_reason(ordered: list[_Entry]) -> str:
    top = ordered[0]
    if top.tier == _UNKNOWN:
        return "quota cache warming"
    if top.tier == _BLOCKED:
        return "all accounts blocked"
    second = ordered[1]
    if second.tier == top.tier and second.result.score == top.result.score:
        return "tied score kept priority"
    return "higher score"


def _sticky(
    ordered: list[_Entry], sticky: _Entry, settings: RoutingSettings
) -> tuple[list[_Entry], str, bool]:
    others = [e for e in ordered if e is not sticky]
    best = others[0]
    if settings.sticky_mode == "auto" and sticky.tier == _POSITIVE and best.tier == _POSITIVE:
        base, rival = sticky.value, best.value
        if rival > base * (1 + switch_margin(base, rival, settings.sticky_strength)):
            return ordered, f"higher score beat sticky {_role(sticky)}", False
    return [sticky, *others], f"sticky session kept {_role(sticky)}", True


def rank(
    candidates: Sequence[Account],
    views: Mapping[int, UsageView],
    *,
    sticky_account: int | None,
    settings: RoutingSettings,
    touched: Mapping[int, frozenset[str]],
    now: float,
) -> Ranking:
    """Order routable ``candidates`` for one request. ``sticky_account``: the session's account
    while its affinity is active. ``touched``: per account, dormant labels touched recently.
    A blocked or exhausted account never comes before a healthy one, except as a kept sticky
    account, which is only kept while its score is positive or unknown."""
    accounts = sorted(candidates, key=lambda a: (a.priority, a.id))
    entries = [
        _entry(a, views.get(a.id) or missing_view(a.id), touched.get(a.id, frozenset()), now)
        for a in accounts
    ]
    warm = tuple(e.account.id for e in entries if e.view.freshness != "fresh")
    ordered = sorted(entries, key=lambda e: (e.tier, -e.value))
    reason, kept = "no available account", False
    affinity = sticky_account if settings.sticky_mode != "disabled" else None
    if len(ordered) == 1:
        reason = "only available account"
    elif ordered:
        promote = settings.dormant_touch == "always" or (
            settings.dormant_touch == "new-session-only" and affinity is None
        )
        dormant = [e for e in ordered if e.pending] if promote else []
        sticky = next((e for e in ordered if e.account.id == affinity), None)
        if dormant:
            # A dormant window is started as soon as possible: those accounts go first, every other
            # account stays behind as failover.
            front = sorted(dormant, key=lambda e: e.touch_rank, reverse=True)
            ordered = front + [e for e in ordered if not e.pending]
            reason, kept = touch_reason(front[0].pending), front[0] is sticky
        elif sticky is not None and sticky.tier in (_POSITIVE, _UNKNOWN):
            ordered, reason, kept = _sticky(ordered, sticky, settings)
        else:
            reason = _plain_reason(ordered)
    return Ranking(
        order=tuple(e.account.id for e in ordered),
        reason=reason,
        scores=tuple(CandidateScore(e.account.id, e.account.name, e.result.score) for e in ordered),
        warm=warm,
        sticky_kept=kept,
        details=tuple(e.result for e in ordered),
    )


def available_at(view: UsageView | None, cooldown_until: float | None, now: float) -> float | None:
    """When an account can serve again: ``now`` if nothing holds it, else the later of its cooldown
    and its blocked or exhausted windows' reset; ``None`` when blocked with no reset known."""
    at = max(now, cooldown_until or now)
    usage = view.usage if view is not None else None
    if usage is None or view is None:
        return at
    age = view.age(now)
    if usage.blocked:
        wait = blocked_for(usage, age, now)
        return None if wait is None else max(at, now + wait)
    spent = [
        w.reset_after_seconds
        for _, w in windows(usage)
        if (w.used_percent or 0) >= 100 and w.reset_after_seconds is not None
    ]
    return max(at, now + max(0.0, max(spent) - age)) if spent else at


def soonest_reset(
    accounts: Iterable[int],
    cooldowns: Mapping[int, Cooldown | float],
    views: Mapping[int, UsageView],
    now: float,
) -> float | None:
    """When an exhausted pool serves again: the earliest :func:`available_at` over ``accounts``
    (``None`` when no account's reset is known)."""
    best: float | None = None
    for account_id in accounts:
        cooling = cooldowns.get(account_id)
        until = cooling.until if isinstance(cooling, Cooldown) else cooling
        at = available_at(views.get(account_id), until, now)
        if at is not None and (best is None or at < best):
            best = at
    return best
