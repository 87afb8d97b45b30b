"""Quota scores: every worked number of the seed's §4 (window scores, normalized scores, guard
factors, account scores), plan weights and blocked timers."""

from __future__ import annotations

import math

import pytest

from tray.models import Usage, Window
from tray.routing.scoring import (
    CONSERVATION_CAP,
    blocked_for,
    health_factor,
    normalized,
    plan_label,
    plan_weight,
    score,
    window_score,
)

PRO, PROLITE = math.sqrt(20), math.sqrt(5)


def w(used: float | None, reset: float | None, span: float | None) -> Window:
    return Window(used_percent=used, window_seconds=span, reset_after_seconds=reset)


def usage(
    primary: Window | None, secondary: Window | None = None, plan: str | None = "plus", **flags: bool
) -> Usage:
    return Usage(
        plan_type=plan,
        allowed=flags.get("allowed", True),
        limit_reached=flags.get("limit_reached", False),
        primary=primary,
        secondary=secondary,
    )


@pytest.mark.parametrize(
    ("used", "reset", "span", "plan", "expected"),
    [
        (50, 600, 18000, 1, 53.1263),
        (30, 600, 18000, 1, 74.3768),
        (79, 900, 9000, 1, 5.0057),
        (98, 900, 18000, 1, 1.2308),
        (79, 900, 18000, 1, 14.5566),
        (0, 18000, 18000, 1, 2.5854),  # dormant 5h
        (10, 300, 18000, 1, 191.2546),
        (10, 483840, 604800, 1, 4.8419),
        (35, 302400, 604800, 1, 6.4220),
        (85, 518400, 604800, 1, 0.5739),
        (50, 14400, 18000, 1, 1.6207),
        (40, 1800, 604800, 1, 4138.8357),
        (80, 2592000, 2592000, 1, 1.1459),  # conservation capped
        (0, 18000000, 18000000, 1, 18.4134),
        (50, 600, 18000, PRO, 237.5879),
        (50, 600, 18000, PROLITE, 118.7939),
        (49, 12000, 18000, PRO, 9.2933),
        (10, 10, None, 1, 0.09),  # no length: left / secs
        (80, None, 18000, 1, 0.4240),  # secs falls back to the length
    ],
)
def test_window_score_worked_values(
    used: float, reset: float | None, span: float | None, plan: float, expected: float
) -> None:
    assert window_score(w(used, reset, span), plan) == pytest.approx(expected, abs=5e-5)


def test_window_score_without_data() -> None:
    assert window_score(None) is None
    assert window_score(w(None, 600, 18000)) is None
    assert window_score(w(50, None, None)) is None


def test_exhausted_window_scores_zero_but_is_not_blocked() -> None:
    assert window_score(w(100, 600, 18000)) == 0
    result = score(usage(w(100, 600, 18000)))
    assert result.score == 0 and not result.blocked


def test_reset_after_zero_counts_as_the_whole_window_ahead() -> None:
    assert window_score(w(50, 0, 18000)) == window_score(w(50, 18000, 18000))


def test_constants_and_health_factor_range() -> None:
    assert abs(CONSERVATION_CAP - 5.430817) < 1e-6
    assert health_factor(1.0, 0.0) == pytest.approx(1.12)
    assert health_factor(0.0, 1.0) == pytest.approx(0.82)
    assert health_factor(0.5, 0.5) == 1


@pytest.mark.parametrize(
    ("used", "t", "expected"),
    [
        (79, 0.1, 0.8059),
        (79, 0.05, 1.5268),
        (19, 0.8, 0.0184),
        (81, 0.2, -0.0603),
        (90, 0.05, 0.7227),
        (98, 0.05, -0.9437),
    ],
)
def test_normalized_worked_values(used: float, t: float, expected: float) -> None:
    for span in (18000, 604800):  # window-length neutral
        assert normalized(w(used, t * span, span)) == pytest.approx(expected, abs=5e-5)
    assert normalized(w(used, t * 18000, 18000), PRO) == pytest.approx(expected, abs=5e-5)  # plan cancels


def test_normalized_is_none_when_impossible() -> None:
    assert normalized(w(100, 900, 18000)) is None  # nothing left
    assert normalized(w(50, 100, 18000), age=100) is None  # reset reached once aged
    assert normalized(w(50, None, 18000)) is None


@pytest.mark.parametrize(
    ("plan", "weight", "label"),
    [
        ("pro", PRO, "pro20"),
        ("PRO", PRO, "pro20"),
        ("prolite", PROLITE, "pro5"),
        ("plus", 1, "plus"),
        ("team", 1, "team"),
        ("enterprise", 1, "enterprise"),
        ("free", 1, "free"),
        (None, 1, "unknown"),
    ],
)
def test_plan_weights_and_labels(plan: str | None, weight: float, label: str) -> None:
    assert plan_weight(plan) == pytest.approx(weight)
    assert plan_label(plan) == label


MAIN = w(10, 483840, 604800)


def test_guard_far_ahead_of_pace_gives_factor_0_200() -> None:
    result = score(usage(MAIN, w(90, 7380, 18000)))
    assert result.guard_factor == pytest.approx(0.200, abs=5e-4)
    assert result.main == pytest.approx(4.8419, abs=5e-5)
    assert result.score == pytest.approx(0.968, abs=5e-4)
    assert result.deciding == "rate.secondary"


def test_guard_windows_are_found_by_length_not_slot() -> None:
    swapped = score(usage(w(90, 7380, 18000), MAIN))
    assert swapped.score == pytest.approx(0.968, abs=5e-4) and swapped.deciding == "rate.primary"


MAIN_SOON = w(10, 14400, 604800)


def test_main_only_slightly_outlasting_the_guard_gives_factor_0_807() -> None:
    result = score(usage(MAIN_SOON, w(90, 12600, 18000)))
    assert normalized(w(90, 12600, 18000)) == pytest.approx(-2.1444, abs=5e-5)
    assert result.guard_factor == pytest.approx(math.exp(-0.21444), abs=5e-5)
    assert round(result.guard_factor or 0, 3) == 0.807


def test_windows_resetting_together_drop_the_pace_guard() -> None:
    result = score(usage(MAIN_SOON, w(90, 14400, 18000)))
    assert result.guard_factor == 1.0 and result.deciding == "rate.primary"
    assert result.score == result.main


def test_low_cap_floor_applies_even_when_windows_reset_together() -> None:
    result = score(usage(MAIN_SOON, w(99, 14400, 18000)))
    assert result.guard_factor == pytest.approx(1 / 3, abs=5e-4)
    assert round(result.guard_factor or 0, 3) == 0.333


def test_guards_are_aged_by_the_cache_age_but_the_main_score_is_not() -> None:
    core = usage(MAIN, w(90, 7380, 18000))
    fresh, old = score(core, 0), score(core, 3000)
    assert old.main == fresh.main  # gap 14 kept: the main window is not aged
    aged_norm = normalized(w(90, 4380, 18000))
    assert aged_norm is not None
    assert old.guard_factor == pytest.approx(math.exp(aged_norm), abs=1e-9)
    assert old.guard_factor != fresh.guard_factor  # 3000 s later the guard is nearer its reset


def test_equal_spans_fall_back_to_the_lower_score() -> None:
    result = score(usage(w(50, 600, 18000), w(30, 600, 18000)))
    assert result.guard_factor is None
    assert result.score == pytest.approx(53.1263, abs=5e-5) and result.deciding == "rate.primary"


def test_single_window_score() -> None:
    result = score(usage(w(50, 600, 18000)))
    assert result.score == pytest.approx(53.1263, abs=5e-5) and result.deciding == "rate.primary"


def test_unknown_scores() -> None:
    assert score(None).score is None
    assert score(usage(None)).score is None  # no windows (e.g. rate_limit: {})
    assert score(usage(w(None, 300, 18000))).score is None  # windows without used_percent


def test_blocked_accounts_score_zero_with_a_timer() -> None:
    blocked = score(usage(w(100, 180, 18000), w(40, 90000, 604800), allowed=False), age=0)
    assert blocked.score == 0 and blocked.blocked and blocked.blocked_for == 180
    limited = score(usage(w(40, 600, 18000), w(100, 3900, 604800), limit_reached=True), age=0)
    assert limited.blocked and limited.blocked_for == 3900  # the most-used (secondary) window decides


def test_blocked_timer_is_aged_and_never_negative() -> None:
    u = usage(w(100, 300, 18000), allowed=False)
    assert blocked_for(u, 120) == 180
    assert blocked_for(u, 400) == 0


def test_blocked_timer_prefers_primary_on_ties_and_is_unknown_without_resets() -> None:
    assert blocked_for(usage(w(100, 500, 18000), w(100, 50, 604800), allowed=False), 0) == 500
    assert blocked_for(usage(w(100, None, 18000), allowed=False), 0) is None


def test_blocked_timer_from_a_429_body_reset() -> None:
    u = Usage("plus", False, True, None, None, blocked_until=1000.0)
    assert blocked_for(u, 0, now=400.0) == 600
    assert score(u, now=400.0).blocked_for == 600


def test_conservation_examples() -> None:
    assert window_score(w(85, 518400, 604800)) == pytest.approx(0.574, abs=5e-4)
    assert window_score(w(50, 14400, 18000)) == pytest.approx(1.621, abs=5e-4)
    assert window_score(w(80, 2592000, 2592000)) == pytest.approx(1.146, abs=5e-4)
