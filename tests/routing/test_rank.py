"""Candidate ranking: scores, plan weights, guards, unknown-as-neutral, sticky sessions, dormant
touches, and when an exhausted pool serves again. Time is injected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tray.models import Account, AccountState, Config, Cooldown, Identity, QuotaEntry, TokenSet, Window
from tray.quota.usage import UsageView, usage_view
from tray.routing.ranking import (
    Ranking,
    RoutingSettings,
    dormant_labels,
    pending_touches,
    rank,
    soonest_reset,
    switch_margin,
    touch_reason,
)
from tray.routing.scoring import window_score

NOW = 1_800_000_000.0
AUTO = RoutingSettings(sticky_mode="auto", dormant_touch="always")


def account(account_id: int, name: str, priority: int | None = None, primary: bool = False) -> Account:
    return Account(
        id=account_id,
        identity=Identity(f"{name}-chat", f"sub-{name}"),
        email=f"{name}@example.com",
        label=name,
        plan=None,
        priority=account_id if priority is None else priority,
        primary=primary,
        state=AccountState.ENABLED,
        state_reason=None,
        state_at=None,
        tokens=TokenSet("a", "r", None, NOW + 3600),
        created_at=NOW,
        updated_at=NOW,
    )


CORE = account(1, "core", 0, primary=True)
POOL = account(2, "pool", 1)
POOL2 = account(3, "pool2", 2)


def win(used: float, reset: float | None, span: float | None = 18000) -> dict[str, Any]:
    out: dict[str, Any] = {"used_percent": used}
    if reset is not None:
        out["reset_after_seconds"] = reset
    if span is not None:
        out["limit_window_seconds"] = span
    return out


def body(
    primary: dict[str, Any] | None = None,
    secondary: dict[str, Any] | None = None,
    plan: str = "plus",
    **flags: Any,
) -> dict[str, Any]:
    limit: dict[str, Any] = {"allowed": True, "limit_reached": False, **flags}
    if primary is not None:
        limit["primary_window"] = primary
    if secondary is not None:
        limit["secondary_window"] = secondary
    return {"plan_type": plan, "rate_limit": limit}


def scored(x: float, plan: str = "plus") -> dict[str, Any]:
    """A single 5h-style window (reset 300 of 18 000) whose score is x (bisection on used %);
    scored(0) is a blocked account."""
    if x == 0:
        return body(win(100, 300), allowed=False)
    weight = {"pro": 20**0.5, "prolite": 5**0.5}.get(plan, 1.0)
    lo, hi = 0.0, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2
        s = window_score(Window(mid, 18000, 300), weight) or 0.0
        lo, hi = (mid, hi) if s > x else (lo, mid)
    return body(win((lo + hi) / 2, 300), plan=plan)


def views(bodies: Mapping[int, dict[str, Any] | None], age: float = 0) -> dict[int, UsageView]:
    return {
        i: usage_view(QuotaEntry(i, json.dumps(b), NOW - age) if b is not None else None, NOW, account_id=i)
        for i, b in bodies.items()
    }


def ranked(
    accounts: list[Account],
    bodies: Mapping[int, dict[str, Any] | None],
    *,
    sticky: int | None = None,
    settings: RoutingSettings = AUTO,
    touched: Mapping[int, frozenset[str]] | None = None,
    age: float = 0,
) -> Ranking:
    return rank(
        accounts, views(bodies, age), sticky_account=sticky, settings=settings, touched=touched or {}, now=NOW
    )


# --- scoring and plan weights ------------------------------------------------------------------------


def test_prefers_pool_when_it_has_more_quota_to_burn_before_reset() -> None:
    r = ranked([CORE, POOL], {1: body(win(50, 600)), 2: body(win(30, 600))})
    assert r.order == (2, 1) and r.reason == "higher score"
    assert [round(s.score or 0, 3) for s in r.scores] == [74.377, 53.126]


def test_keeps_core_first_when_core_is_more_urgent() -> None:
    r = ranked([CORE, POOL], {1: body(win(30, 600)), 2: body(win(50, 600))})
    assert r.order == (1, 2) and r.reason == "higher score"


def test_pro_pool_beats_plus_core_at_equal_usage() -> None:
    assert ranked([CORE, POOL], {1: body(win(50, 600)), 2: body(win(50, 600), plan="pro")}).order == (2, 1)


def test_healthy_plus_pool_beats_slightly_ahead_pro_core() -> None:
    r = ranked([CORE, POOL], {1: body(win(49, 12000), plan="pro"), 2: scored(17.80)})
    assert r.order == (2, 1)
    assert [round(s.score or 0, 2) for s in r.scores] == [17.80, 9.29]


def test_unknown_plan_weighs_like_plus_and_ties_keep_priority() -> None:
    r = ranked([CORE, POOL], {1: body(win(50, 600)), 2: body(win(50, 600), plan="enterprise")})
    assert r.order == (1, 2) and r.reason == "tied score kept priority"


def test_prolite_beats_plus_and_pro_beats_prolite() -> None:
    assert ranked([CORE, POOL], {1: body(win(50, 600)), 2: body(win(50, 600), plan="prolite")}).order == (
        2,
        1,
    )
    assert ranked(
        [CORE, POOL], {1: body(win(50, 600), plan="prolite"), 2: body(win(50, 600), plan="pro")}
    ).order == (2, 1)


@pytest.mark.parametrize("flags", [{"allowed": False}, {"limit_reached": True}])
def test_blocked_core_goes_last(flags: dict[str, Any]) -> None:
    r = ranked([CORE, POOL], {1: body(win(10, 600), **flags), 2: body(win(90, 600))})
    assert r.order == (2, 1) and r.details[1].blocked and r.scores[1].score == 0


def test_uses_window_length_when_reset_is_missing() -> None:
    assert ranked([CORE, POOL], {1: body(win(80, None)), 2: body(win(20, None))}).order == (2, 1)


def test_additional_rate_limits_are_ignored() -> None:
    core = {
        **body(win(30, 600)),
        "additional_rate_limits": [{"rate_limit": body(win(100, 600), allowed=False)["rate_limit"]}],
    }
    assert ranked([CORE, POOL], {1: core, 2: body(win(50, 600))}).order == (1, 2)


def test_conservation_dampens_a_long_window() -> None:
    r = ranked([CORE, POOL], {1: body(win(85, 518400, 604800)), 2: body(win(50, 14400))})
    assert r.order == (2, 1)


def test_conservation_allows_burning_a_near_reset_long_window() -> None:
    r = ranked([CORE, POOL], {1: body(win(50, 14400)), 2: body(win(40, 1800, 604800))})
    assert r.order == (2, 1) and round(r.scores[0].score or 0, 1) == 4138.8


def test_conservation_is_capped_at_the_horizon() -> None:
    r = ranked([CORE, POOL], {1: body(win(80, 2592000, 2592000)), 2: body(win(50, 14400))})
    assert r.order == (2, 1) and round(r.scores[1].score or 0, 3) == 1.146


def test_remaining_pool_accounts_are_ranked_when_core_is_unavailable() -> None:
    r = ranked([POOL, POOL2], {2: scored(0.9), 3: scored(1.2)})
    assert r.order == (3, 2) and r.reason == "higher score"


def test_three_accounts_highest_first_all_kept_for_failover() -> None:
    r = ranked([CORE, POOL, POOL2], {1: scored(1.0), 2: scored(0.8), 3: scored(1.2)})
    assert r.order == (3, 1, 2)


# --- multi-window guards ------------------------------------------------------------------------------


def test_short_window_far_ahead_of_pace_guards_the_long_one() -> None:
    core = body(win(90, 7380), win(10, 483840, 604800))
    r = ranked([CORE, POOL], {1: core, 2: body(win(35, 302400, 604800))})
    assert r.order == (2, 1)
    assert round(r.details[1].guard_factor or 0, 3) == 0.200 and round(r.scores[1].score or 0, 3) == 0.968


def test_windows_resetting_together_keep_core() -> None:
    core = body(win(90, 14400), win(10, 14400, 604800))
    r = ranked([CORE, POOL], {1: core, 2: scored(5.0)})
    assert r.order == (1, 2) and r.details[0].guard_factor == 1.0


def test_longest_window_drives_ranking_even_when_the_short_one_is_healthy() -> None:
    core = body(win(5, 9000), win(99.8, 600, 604800))
    r = ranked([CORE, POOL], {1: core, 2: body(win(50, 600))})
    assert r.order == (2, 1) and round(r.scores[1].score or 0, 1) == 37.0


def test_stale_cache_ages_guard_windows() -> None:
    core = body(win(90, 7380), win(10, 483840, 604800))
    fresh = ranked([CORE, POOL], {1: core, 2: scored(1.5)})
    stale = ranked([CORE, POOL], {1: core, 2: scored(1.5)}, age=3000)
    assert fresh.order == (2, 1) and stale.order == (1, 2)
    assert stale.warm == (1, 2)


# --- unknown scores are neutral (gaps 9, 10) ------------------------------------------------------


def test_unknown_account_sits_between_known_and_blocked() -> None:
    accounts = [CORE, POOL, POOL2, account(4, "pool3", 3)]
    r = ranked(accounts, {1: scored(0), 2: None, 3: scored(1.0), 4: body()})
    assert r.order == (3, 2, 4, 1)
    assert [s.score for s in r.scores][1:3] == [None, None]
    assert r.reason == "higher score"
    assert set(r.warm) == {2}  # the cold one; the others are fresh


def test_one_unknown_account_does_not_turn_scoring_off() -> None:
    r = ranked([CORE, POOL, POOL2], {1: None, 2: scored(0.5), 3: scored(0.8)})
    assert r.order == (3, 2, 1)


def test_all_unknown_keeps_priority_and_warms_everything() -> None:
    r = ranked([POOL, CORE], {1: None, 2: None})
    assert r.order == (1, 2) and r.reason == "quota cache warming" and set(r.warm) == {1, 2}


def test_expired_cache_is_unknown_but_stale_cache_still_decides() -> None:
    stale = ranked([CORE, POOL], {1: scored(0.5), 2: scored(0.8)}, age=120)
    assert stale.order == (2, 1) and stale.warm == (1, 2)
    expired = ranked([CORE, POOL], {1: scored(0.5), 2: scored(0.8)}, age=3601)
    assert expired.order == (1, 2) and expired.reason == "quota cache warming"


def test_scoring_works_without_a_primary() -> None:
    r = ranked([POOL, POOL2], {2: scored(0.5), 3: scored(0.8)})
    assert r.order == (3, 2) and r.reason == "higher score"


def test_exhausted_but_unflagged_goes_after_unknown() -> None:
    r = ranked([CORE, POOL], {1: body(win(100, 600)), 2: None})
    assert r.order == (2, 1)


def test_single_and_empty_candidate_lists() -> None:
    one = ranked([CORE], {1: None})
    assert one.order == (1,) and one.reason == "only available account" and one.warm == (1,)
    none = ranked([], {})
    assert none.order == () and none.scores == ()


def test_all_blocked() -> None:
    r = ranked([CORE, POOL], {1: scored(0), 2: scored(0)})
    assert r.order == (1, 2) and r.reason == "all accounts blocked"


# --- sticky sessions ------------------------------------------------------------------------------


def test_margin_worked_values() -> None:
    assert switch_margin(0.55, 0.56, 1) == pytest.approx(0.346875)
    assert 0.55 * (1 + switch_margin(0.55, 0.56, 1)) == pytest.approx(0.7408, abs=5e-5)
    assert switch_margin(0.10, 0.132, 1) == pytest.approx(0.30758, abs=5e-6)
    assert 0.10 * (1 + switch_margin(0.10, 0.132, 1)) == pytest.approx(0.130758, abs=5e-6)
    assert switch_margin(0.55, 0.56, 0) == 0


def test_sticky_keeps_the_account_when_scores_are_close() -> None:
    r = ranked([CORE, POOL], {1: scored(0.55), 2: scored(0.56)}, sticky=1)
    assert r.order == (1, 2) and r.sticky_kept and r.reason == "sticky session kept core"


def test_sticky_yields_when_the_alternative_beats_the_margin() -> None:
    r = ranked([CORE, POOL], {1: scored(0.55), 2: scored(0.8)}, sticky=1)
    assert r.order == (2, 1) and not r.sticky_kept and r.reason == "higher score beat sticky core"


def test_sticky_always_stays() -> None:
    r = ranked(
        [CORE, POOL],
        {1: scored(0.55), 2: scored(0.8)},
        sticky=1,
        settings=RoutingSettings(sticky_mode="always"),
    )
    assert r.order == (1, 2) and r.sticky_kept


def test_sticky_disabled_is_pure_score_routing() -> None:
    r = ranked(
        [CORE, POOL],
        {1: scored(0.55), 2: scored(0.56)},
        sticky=1,
        settings=RoutingSettings(sticky_mode="disabled"),
    )
    assert r.order == (2, 1) and not r.sticky_kept and r.reason == "higher score"


def test_strength_zero_lets_any_better_score_win() -> None:
    settings = RoutingSettings(sticky_mode="auto", sticky_strength=0)
    assert ranked([CORE, POOL], {1: scored(0.55), 2: scored(0.56)}, sticky=1, settings=settings).order == (
        2,
        1,
    )


def test_sticky_can_keep_a_lower_priority_pool_account() -> None:
    r = ranked([CORE, POOL], {1: scored(0.56), 2: scored(0.55)}, sticky=2)
    assert r.order == (2, 1) and r.reason == "sticky session kept pool"


def test_sticky_yields_when_its_account_is_blocked() -> None:
    for mode in ("auto", "always"):
        r = ranked(
            [CORE, POOL], {1: scored(0), 2: scored(0.3)}, sticky=1, settings=RoutingSettings(sticky_mode=mode)
        )
        assert r.order == (2, 1) and not r.sticky_kept


def test_adaptive_margin_breaks_affinity_sooner_when_scores_diverge() -> None:
    assert ranked([CORE, POOL], {1: scored(0.10), 2: scored(0.132)}, sticky=1).order == (2, 1)
    assert ranked([CORE, POOL], {1: scored(0.10), 2: scored(0.13)}, sticky=1).order == (1, 2)


def test_sticky_account_with_unknown_score_is_kept() -> None:
    r = ranked([CORE, POOL], {1: None, 2: scored(0.8)}, sticky=1)
    assert r.order == (1, 2) and r.sticky_kept


def test_sticky_account_not_among_candidates_is_ignored() -> None:
    r = ranked([POOL, POOL2], {2: scored(0.5), 3: scored(0.8)}, sticky=1)
    assert r.order == (3, 2) and not r.sticky_kept


# --- dormant touches ------------------------------------------------------------------------------

DORMANT_5H = win(0, 18000)


def test_dormant_detection() -> None:
    from tray.quota.usage import parse_usage

    assert dormant_labels(parse_usage(body(DORMANT_5H, win(0, 604800, 604800)))) == (
        "rate.primary",
        "rate.secondary",
    )
    assert dormant_labels(parse_usage(body(win(0, 17939)))) == ()  # partial countdown
    assert dormant_labels(parse_usage(body(win(0, 1800, 604800)))) == ()  # started, 0 % used
    assert pending_touches(parse_usage(body(DORMANT_5H)), frozenset({"rate.primary"})) == ()
    assert touch_reason(["rate.primary"]) == "touch dormant rate.primary"
    assert (
        touch_reason(["rate.primary", "rate.secondary"])
        == "touch dormant windows (rate.primary, rate.secondary)"
    )


def test_dormant_account_is_touched_once_then_scores_decide() -> None:
    bodies = {1: body(DORMANT_5H), 2: scored(50)}
    first = ranked([CORE, POOL], bodies)
    assert first.order == (1, 2) and first.reason == "touch dormant rate.primary"
    after = ranked([CORE, POOL], bodies, touched={1: frozenset({"rate.primary"})})
    assert after.order == (2, 1) and after.reason == "higher score"


def test_promotion_keeps_every_other_account_as_failover() -> None:
    r = ranked([CORE, POOL, POOL2], {1: scored(5), 2: scored(9), 3: body(DORMANT_5H)})
    assert r.order == (3, 2, 1)  # gap 11: the healthy accounts stay behind the touched one


def test_untouched_secondary_windows_come_first() -> None:
    r = ranked([CORE, POOL], {1: body(DORMANT_5H), 2: body(DORMANT_5H, win(0, 604800, 604800))})
    assert r.order == (2, 1) and r.reason == "touch dormant windows (rate.primary, rate.secondary)"


def test_blocked_accounts_are_never_promoted() -> None:
    r = ranked([CORE, POOL], {1: body(DORMANT_5H, allowed=False), 2: scored(1)})
    assert r.order == (2, 1) and r.reason == "higher score"


def test_dormant_touch_can_be_disabled() -> None:
    r = ranked(
        [CORE, POOL], {1: body(DORMANT_5H), 2: scored(50)}, settings=RoutingSettings(dormant_touch="disabled")
    )
    assert r.order == (2, 1)


def test_started_zero_used_windows_score_normally() -> None:
    r = ranked([CORE, POOL], {1: body(win(0, 1800, 604800)), 2: body(DORMANT_5H)})
    assert r.order == (2, 1) and r.reason == "touch dormant rate.primary"
    touched = ranked(
        [CORE, POOL],
        {1: body(win(0, 1800, 604800)), 2: body(DORMANT_5H)},
        touched={2: frozenset({"rate.primary"})},
    )
    assert touched.order == (1, 2) and touched.reason == "higher score"


def test_dormant_guard_is_touched_once_before_guard_pressure_returns() -> None:
    core = body(DORMANT_5H, win(10, 483840, 604800))
    first = ranked([CORE, POOL], {1: core, 2: scored(9)})
    assert first.order == (1, 2) and first.reason == "touch dormant rate.primary"
    later = ranked([CORE, POOL], {1: core, 2: scored(9)}, touched={1: frozenset({"rate.primary"})})
    assert later.order == (2, 1)


def test_new_session_only_does_not_override_an_active_sticky_session() -> None:
    settings = RoutingSettings(sticky_mode="always", dormant_touch="new-session-only")
    bodies = {1: scored(5), 2: body(DORMANT_5H)}
    assert ranked([CORE, POOL], bodies, sticky=1, settings=settings).order == (1, 2)
    assert ranked([CORE, POOL], bodies, settings=settings).order == (2, 1)


def test_dormant_touch_always_can_pull_a_sticky_session_away() -> None:
    settings = RoutingSettings(sticky_mode="always", dormant_touch="always")
    r = ranked([CORE, POOL], {1: scored(5), 2: body(DORMANT_5H)}, sticky=1, settings=settings)
    assert r.order == (2, 1) and not r.sticky_kept


# --- settings and soonest reset --------------------------------------------------------------------


def test_settings_from_a_config() -> None:
    config = Config(fast_mode="always", fast_mode_bias=0.03, sticky_mode="disabled", sticky_strength=2.5,
                    dormant_touch="disabled")
    assert RoutingSettings.from_config(config) == RoutingSettings("always", 0.03, "disabled", 2.5, "disabled")
    assert RoutingSettings.from_config(Config()) == RoutingSettings()


def test_soonest_reset_of_an_exhausted_pool() -> None:
    v = views({1: body(win(100, 3000), allowed=False), 2: body(win(100, 900)), 3: scored(2)})
    cooldowns: dict[int, Cooldown | float] = {3: Cooldown(3, NOW + 1200, 429, "rate_limited", "retry-after")}
    assert soonest_reset([1, 2, 3], cooldowns, v, NOW) == NOW + 900
    assert soonest_reset([1, 3], cooldowns, v, NOW) == NOW + 1200
    assert soonest_reset([1], {1: NOW + 5000.0}, v, NOW) == NOW + 5000  # cooldown outlasts the window
    assert soonest_reset([4], {}, {}, NOW) == NOW  # nothing holds it
    assert soonest_reset([1], {}, views({1: body(win(100, None), allowed=False)}), NOW) is None
    assert soonest_reset([], {}, {}, NOW) is None


# --- invariants over random pools -------------------------------------------------------------------

window_st = st.none() | st.builds(
    win,
    st.floats(min_value=0, max_value=100),
    st.none() | st.floats(min_value=0, max_value=700000),
    st.none() | st.sampled_from([300.0, 18000.0, 604800.0, 2592000.0]),
)
body_st = st.none() | st.builds(
    lambda p, s, allowed, plan: body(p, s, plan=plan, allowed=allowed),
    window_st,
    window_st,
    st.booleans(),
    st.sampled_from(["plus", "pro", "prolite", "team"]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(body_st, min_size=1, max_size=6),
    st.sampled_from(["auto", "always", "disabled"]),
    st.sampled_from(["always", "new-session-only", "disabled"]),
    st.none() | st.integers(min_value=1, max_value=6),
    st.floats(min_value=0, max_value=4000),
)
def test_rank_keeps_every_candidate_and_blocked_accounts_last(
    bodies: list[dict[str, Any] | None], sticky_mode: str, dormant: str, sticky: int | None, age: float
) -> None:
    accounts = [account(i + 1, f"a{i}", primary=i == 0) for i in range(len(bodies))]
    settings_ = RoutingSettings(sticky_mode=sticky_mode, dormant_touch=dormant)
    r = ranked(accounts, dict(enumerate(bodies, start=1)), sticky=sticky, settings=settings_, age=age)
    assert sorted(r.order) == [a.id for a in accounts]
    assert [s.account_id for s in r.scores] == list(r.order)
    blocked = [d.blocked for d in r.details]
    assert blocked == sorted(blocked), "a blocked account came before a usable one"
    healthy = [d.score is not None and d.score > 0 and not d.blocked for d in r.details]
    if any(healthy) and not r.sticky_kept:
        assert healthy[0], f"{r.reason}: a healthy account exists but another comes first"


def test_dormant_touch_order_follows_window_length_not_slot() -> None:
    # A plan that reports its weekly window in the primary slot: the untouched week still goes first.
    weekly_in_primary = body(win(0, 604800, 604800), win(20, 9000))
    daily_only = body(DORMANT_5H, win(20, 300000, 604800))
    r = ranked([CORE, POOL], {1: daily_only, 2: weekly_in_primary})
    assert r.order == (2, 1) and r.reason == "touch dormant rate.primary"
