"""The pool view, its pace and its forecast, with worked numbers (pure; times are parameters)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tray.forecast.pace import (
    Forecast,
    account_pace,
    current_window,
    forecast,
    pool_pace,
    runs_out,
    sentence,
    span_text,
    warning,
)
from tray.forecast.pool import Level, Member, grid, level_at, members, pool_series, pool_used, resets
from tray.models import Account, AccountState, Identity, TokenSet, UsageSample

H = 3600.0
FIVE_H = 5 * H
WEEK = 7 * 86400.0
NOW = datetime(2025, 3, 4, 14, 0, tzinfo=UTC).timestamp()  # a Tuesday, 14:00 UTC


def s(at: float, used: float, reset_at: float | None, account: int = 1, span: float = FIVE_H,
      source: str = "headers") -> UsageSample:
    return UsageSample(account, span, used, reset_at, source, at)


def member(account: int, *samples: UsageSample, weight: float = 1.0, span: float = FIVE_H) -> Member:
    return Member(account, weight, span, tuple(samples))


def account(account_id: int, plan: str, state: AccountState = AccountState.ENABLED) -> Account:
    tokens = TokenSet("at", "rt", None, 0.0)
    return Account(account_id, Identity(f"acc-{account_id}", f"user-{account_id}"), f"{account_id}@x.com",
                   None, plan, account_id, False, state, None, None, tokens, 0.0, 0.0)


# ---- pool view -------------------------------------------------------------------------------------


def test_a_level_is_the_last_sample_and_a_passed_reset_brings_it_back_to_zero() -> None:
    samples = [s(NOW - 600, 20, NOW + H), s(NOW - 300, 35, NOW + H)]
    assert level_at(samples, NOW - 700) is None
    assert level_at(samples, NOW - 400) == Level(20, NOW + H)
    assert level_at(samples, NOW) == Level(35, NOW + H)
    assert level_at(samples, NOW + H + 1) == Level(0, None, started=False)


def test_an_untouched_window_has_no_running_reset() -> None:
    dormant = s(NOW - 60, 0, NOW - 60 + FIVE_H)
    assert level_at([dormant], NOW) == Level(0, None, started=False)


def test_pool_used_is_the_capacity_weighted_mean_with_the_plan_weights() -> None:
    pro, plus = math.sqrt(20), 1.0
    pool = [member(1, s(NOW - 60, 10, NOW + H), weight=pro),
            member(2, s(NOW - 60, 90, NOW + H, 2), weight=plus)]
    # (4.472 × 10 + 1 × 90) / 5.472 = 24.62 %
    assert pool_used(pool, NOW) == pytest.approx((pro * 10 + 90) / (pro + 1))
    assert pool_used(pool, NOW) == pytest.approx(24.62, abs=0.01)


def test_pool_members_are_the_accounts_in_routing_with_their_plan_weights() -> None:
    samples = [s(NOW, 10, NOW + H, 1), s(NOW, 20, NOW + H, 2), s(NOW, 30, NOW + H, 3),
               s(NOW, 40, NOW + 3 * 86400, 1, WEEK)]
    found = members([account(1, "pro"), account(2, "plus"), account(3, "plus", AccountState.DISABLED)],
                    samples)
    assert sorted(found) == ["5h", "weekly"]
    assert [(m.account_id, m.weight) for m in found["5h"]] == [(1, pytest.approx(math.sqrt(20))), (2, 1.0)]
    assert [m.account_id for m in found["weekly"]] == [1]


def test_series_on_a_grid_and_the_resets_in_range() -> None:
    pool = [member(1, s(NOW - 2 * H, 10, NOW - H), s(NOW - 0.5 * H, 30, NOW + 4 * H))]
    times = grid(NOW - 3 * H, NOW, 4)
    assert times == [NOW - 3 * H, NOW - 2 * H, NOW - H, NOW]
    assert pool_series(pool, times) == [None, 10, 0, 30]  # the reset at NOW - 1 h brought it back to 0
    assert resets(pool[0].samples, NOW - 3 * H, NOW + 5 * H) == [NOW - H, NOW + 4 * H]


# ---- pace ------------------------------------------------------------------------------------------


def test_pace_over_the_last_hour_starts_from_where_the_window_stood_an_hour_ago() -> None:
    samples = [s(NOW - 2 * H, 20, NOW + 2 * H), s(NOW - 0.5 * H, 30, NOW + 2 * H), s(NOW, 40, NOW + 2 * H)]
    assert account_pace(samples, NOW) == pytest.approx(20.0)  # 40 - 20 over the hour


def test_pace_since_the_window_began_when_that_is_shorter() -> None:
    samples = [s(NOW - 50 * 60, 80, NOW - 10 * 60),  # the old window, reset 10 min ago
               s(NOW - 9 * 60, 2, NOW - 9 * 60 + FIVE_H), s(NOW, 12, NOW - 9 * 60 + FIVE_H)]
    assert [x.used_percent for x in current_window(samples, NOW)] == [2, 12]
    assert account_pace(samples, NOW) == pytest.approx(10 / (9 / 60))  # 66.7 % per hour


def test_pace_needs_two_samples_twenty_seconds_apart() -> None:
    assert account_pace([s(NOW - 10, 10, NOW + H), s(NOW, 11, NOW + H)], NOW) is None
    assert account_pace([s(NOW, 11, NOW + H)], NOW) is None
    assert account_pace([s(NOW - 25, 10, NOW + H), s(NOW, 11, NOW + H)], NOW) == pytest.approx(144.0)


def test_a_window_seen_only_before_the_hour_is_idle() -> None:
    assert account_pace([s(NOW - 2 * H, 40, NOW + H)], NOW) == 0.0


def test_pool_pace_is_the_weighted_mean_and_unknown_without_any_pace() -> None:
    busy = member(1, s(NOW - H, 20, NOW + 2 * H), s(NOW, 60, NOW + 2 * H))  # 40 %/h
    quiet = member(2, s(NOW - 5, 50, NOW + 2 * H, 2), weight=3.0)  # a single sample: no pace (idle)
    assert pool_pace([busy, quiet], NOW) == pytest.approx(40 * 1 / 4)
    assert pool_pace([quiet], NOW) is None


# ---- runout ----------------------------------------------------------------------------------------


def test_the_pool_runs_out_before_the_next_reset() -> None:
    # A: 60 % used, resets in 2 h, +40 %/h; B: 80 % used, resets in 4 h, idle. Pool pace (40 + 0) / 2
    # = 20 %/h = 40 units/h of 200. A's 40 units go first (it resets first): empty at +1 h; then B's
    # 20 units: empty at +1.5 h, half an hour before A comes back at +2 h.
    a = member(1, s(NOW - H, 20, NOW + 2 * H), s(NOW, 60, NOW + 2 * H))
    b = member(2, s(NOW - H, 80, NOW + 4 * H, 2), s(NOW, 80, NOW + 4 * H, 2))
    fc = forecast("5h", [a, b], NOW)
    assert fc.used_percent == pytest.approx(70)
    assert fc.pace_percent_per_hour == pytest.approx(20)
    assert fc.runs_out_at == pytest.approx(NOW + 1.5 * H)
    assert fc.next_reset_at == pytest.approx(NOW + 2 * H)
    assert fc.early
    assert sentence(fc, NOW, UTC) == ("At this pace the pool's 5-hour quota runs out at 15:30, "
                                      "30 min before the next reset at 16:00.")


def test_a_reset_in_between_gives_capacity_back() -> None:
    # 40 %/h of a two-account pool = 80 units/h. A (90 %, resets at +0.5 h) is dry at +0.125 h; B
    # (50 %, resets at +3 h) then has 50 - 80 × 0.375 = 20 units left when A comes back full at
    # +0.5 h, and is dry at +0.75 h. A's new window starts then (reset at +5.75 h): 100 units last
    # until +2 h. Nothing is left until B resets at +3 h. Without the reset it would be +0.75 h.
    a = member(1, s(NOW - H, 50, NOW + 0.5 * H), s(NOW, 90, NOW + 0.5 * H))
    b = member(2, s(NOW - H, 10, NOW + 3 * H, 2), s(NOW, 50, NOW + 3 * H, 2))
    fc = forecast("5h", [a, b], NOW)
    assert fc.pace_percent_per_hour == pytest.approx(40)
    assert fc.runs_out_at == pytest.approx(NOW + 2 * H)
    assert fc.next_reset_at == pytest.approx(NOW + 3 * H)
    assert sentence(fc, NOW, UTC).endswith("runs out at 16:00, 1 h before the next reset at 17:00.")


def test_a_pace_the_resets_keep_up_with_never_runs_out() -> None:
    # 20 %/h over two accounts: every account resets before the pool is dry, within the 5 h horizon.
    a = member(1, s(NOW - H, 50, NOW + 0.5 * H), s(NOW, 90, NOW + 0.5 * H))
    b = member(2, s(NOW - H, 50, NOW + 3 * H, 2), s(NOW, 50, NOW + 3 * H, 2))
    fc = forecast("5h", [a, b], NOW)
    assert fc.pace_percent_per_hour == pytest.approx(20)
    assert fc.runs_out_at is None and not fc.early
    assert fc.next_reset_at == pytest.approx(NOW + 0.5 * H)
    assert sentence(fc, NOW, UTC) == ("At this pace the pool's 5-hour quota lasts until the next reset "
                                      "at 14:30.")


def test_an_untouched_window_starts_its_timer_when_first_spent() -> None:
    # A is untouched (0 %, its reset a full window after each reading): it is spent last, and its
    # window starts then. 100 %/h over A + B: B's 40 units go in 0.2 h, A's 100 in 0.5 h: dry at
    # +0.7 h; A's reset is +0.2 h + 5 h, B's at +1 h comes first.
    a = member(1, s(NOW - 30, 0, NOW - 30 + FIVE_H), s(NOW, 0, NOW + FIVE_H))
    b = member(2, s(NOW - H, 0, NOW + H, 2), s(NOW, 60, NOW + H, 2))
    fc = forecast("5h", [a, b], NOW)
    assert fc.pace_percent_per_hour == pytest.approx(30)  # (0 + 60) / 2; A's pace is 0 from 30 s
    levels = [(1.0, Level(0, None, started=False), FIVE_H), (1.0, Level(60, NOW + H), FIVE_H)]
    assert runs_out(levels, NOW, 100, FIVE_H) == (pytest.approx(NOW + 0.7 * H), pytest.approx(NOW + H))


def test_a_used_up_pool_has_run_out_now_whatever_the_pace() -> None:
    pool = [member(1, s(NOW - 5, 100, NOW + H)), member(2, s(NOW - 5, 100, NOW + 2 * H, 2))]
    fc = forecast("5h", pool, NOW)
    assert fc.pace_percent_per_hour is None
    assert (fc.runs_out_at, fc.next_reset_at) == (NOW, NOW + H)
    assert fc.early
    assert sentence(fc, NOW, UTC) == "The pool's 5-hour quota is used up; it comes back at 15:00."


def test_without_a_pace_there_is_no_runout() -> None:
    fc = forecast("weekly", [member(1, s(NOW - 5, 30, NOW + 2 * 86400, span=WEEK), span=WEEK)], NOW)
    assert (fc.used_percent, fc.pace_percent_per_hour, fc.runs_out_at) == (30, None, None)
    assert fc.next_reset_at == NOW + 2 * 86400
    assert "no pace yet" in sentence(fc, NOW, UTC)


def test_no_samples_no_forecast() -> None:
    assert forecast("5h", [], NOW) == Forecast("5h", None, None, None, None, 0)
    assert sentence(forecast("5h", [], NOW), NOW) == "The pool's 5-hour quota: not known yet."


def test_a_runout_beyond_the_horizon_is_not_announced() -> None:
    # One account whose reset is not known, 0 → 10 % in an hour: 90 % left lasts 9 h, beyond the
    # 5 h a window of its length spans.
    slow = member(1, s(NOW - H, 0, None), s(NOW, 10, None))
    fc = forecast("5h", [slow], NOW)
    assert fc.pace_percent_per_hour == pytest.approx(10)
    assert fc.runs_out_at is None


def test_the_weekly_window_in_words_and_the_warning() -> None:
    a = member(1, s(NOW - H, 60, NOW + 3 * 86400, span=WEEK), s(NOW, 70, NOW + 3 * 86400, span=WEEK),
               span=WEEK)
    fc = forecast("weekly", [a], NOW)
    assert fc.runs_out_at == pytest.approx(NOW + 3 * H)  # 30 % left at 10 %/h
    assert warning(fc, NOW, UTC) == ("At this pace the pool's weekly quota runs out at 17:00, "
                                     "before the next reset (Fri 14:00).")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 min"), (29, "0 min"), (1800, "30 min"), (4200, "1 h 10 min"), (7200, "2 h"),
    (2 * 86400 + 4 * H, "2 d 4 h"), (86400, "1 d")])
def test_span_text(seconds: float, text: str) -> None:
    assert span_text(seconds) == text
