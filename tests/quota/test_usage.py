"""Usage payload parsing and quota-cache views (fresh / stale / missing, reset deadlines, refetch pacing)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tray.models import QuotaEntry, Window
from tray.quota.usage import (
    by_length,
    is_dormant,
    parse_usage,
    should_revalidate,
    usage_view,
    wants_refetch,
    window_length,
)

NOW = 1_800_000_000.0


def payload(
    primary: dict[str, Any] | None = None, secondary: dict[str, Any] | None = None, **limit: Any
) -> dict[str, Any]:
    rate: dict[str, Any] = dict(limit)
    if primary is not None:
        rate["primary_window"] = primary
    if secondary is not None:
        rate["secondary_window"] = secondary
    return {"plan_type": "plus", "account_id": "acc-1", "rate_limit": rate}


def win(used: float, reset: float, span: float = 18000) -> dict[str, float]:
    return {"used_percent": used, "reset_after_seconds": reset, "limit_window_seconds": span}


def entry(body: dict[str, Any] | str, age: float, account_id: int = 7) -> QuotaEntry:
    raw = body if isinstance(body, str) else json.dumps(body)
    return QuotaEntry(account_id=account_id, raw=raw, updated_at=NOW - age)


# --- parse_usage ----------------------------------------------------------------------------------


def test_parses_the_fields_routing_reads() -> None:
    usage = parse_usage(payload(win(50, 600), win(10, 483840, 604800), allowed=True, limit_reached=False))
    assert usage is not None
    assert usage.plan_type == "plus" and usage.account_id == "acc-1"
    assert usage.allowed is True and usage.limit_reached is False and not usage.blocked
    assert usage.primary == Window(50.0, 18000.0, 600.0)
    assert usage.secondary == Window(10.0, 604800.0, 483840.0)


def test_parses_json_text_and_bytes() -> None:
    text = json.dumps(payload(win(1, 2)))
    assert parse_usage(text) == parse_usage(text.encode()) == parse_usage(json.loads(text))


def test_blocked_flags() -> None:
    blocked_a = parse_usage(payload(allowed=False))
    blocked_b = parse_usage(payload(limit_reached=True))
    assert blocked_a is not None and blocked_a.blocked
    assert blocked_b is not None and blocked_b.blocked


def test_junk_gives_none_or_partial_data() -> None:
    assert parse_usage(None) is None
    assert parse_usage("not json") is None
    assert parse_usage([1, 2]) is None
    assert parse_usage(b"\xff\xfe") is None
    usage = parse_usage(
        {"plan_type": 5, "rate_limit": {"allowed": "yes", "primary_window": {"used_percent": "x"}}}
    )
    assert usage is not None
    assert usage.plan_type is None and usage.allowed is None and usage.primary is None
    partial = parse_usage({"rate_limit": {"primary_window": {"used_percent": 40, "reset_after_seconds": -5}}})
    assert partial is not None and partial.primary == Window(40.0, None, None)


def test_non_finite_and_boolean_numbers_are_dropped() -> None:
    usage = parse_usage(
        {"rate_limit": {"primary_window": {"used_percent": True, "limit_window_seconds": float("inf")}}}
    )
    assert usage is not None and usage.primary is None


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)
usage_like = st.fixed_dictionaries(
    {},
    optional={
        "plan_type": json_values,
        "rate_limit": st.fixed_dictionaries(
            {},
            optional={
                "allowed": json_values,
                "limit_reached": json_values,
                "primary_window": st.dictionaries(
                    st.sampled_from(
                        ["used_percent", "reset_after_seconds", "limit_window_seconds", "reset_at"]
                    ),
                    json_values,
                )
                | json_values,
                "secondary_window": json_values,
                "resets_at": json_values,
            },
        )
        | json_values,
    },
)


@settings(deadline=None)  # timing varies on a loaded CI machine
@given(st.one_of(json_values, usage_like, st.binary(max_size=64), st.text(max_size=64)))
def test_parse_usage_never_raises(junk: object) -> None:
    parse_usage(junk)


@settings(deadline=None)  # timing varies on a loaded CI machine
@given(usage_like, st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9))
def test_usage_view_never_raises(body: dict[str, Any], age: float) -> None:
    view = usage_view(entry(json.dumps(body), age), NOW)
    assert view.freshness in ("fresh", "stale", "missing")


# --- windows --------------------------------------------------------------------------------------


def test_windows_are_classified_by_length_not_slot() -> None:
    # Some plans report the weekly window in the primary slot.
    usage = parse_usage(payload(win(20, 3000, 604800), win(60, 3000, 18000)))
    assert [window_length(w.window_seconds) for _, w in by_length(usage)] == ["5h", "7d"]
    assert [label for label, _ in by_length(usage)] == ["rate.secondary", "rate.primary"]


def test_window_names() -> None:
    assert window_length(18000) == "5h"
    assert window_length(604800) == "7d"
    assert window_length(9000) == "2.5h"
    assert window_length(2592000) == "30d"
    assert window_length(1800) == "30m"
    assert window_length(45) == "45s"
    assert window_length(None) == "?"


def test_dormant_detection_tolerates_rounding() -> None:
    assert is_dormant(Window(0, 18000, 18000))
    assert is_dormant(Window(0, 18000, 17999.4))  # gap 16: upstream rounding
    assert is_dormant(Window(0, 604800, 604500))  # within 0.1 % of a week
    assert not is_dormant(Window(0, 18000, 17939))  # a started window (seed test)
    assert not is_dormant(Window(0, 604800, 1800))  # started, nothing used yet
    assert not is_dormant(Window(1, 18000, 18000))
    assert not is_dormant(Window(0, None, 18000))


# --- usage_view ------------------------------------------------------------------------------------


def test_fresh_within_a_minute_then_stale_then_missing_after_an_hour() -> None:
    body = payload(win(50, 10000))
    assert usage_view(entry(body, 0), NOW).freshness == "fresh"
    assert usage_view(entry(body, 60), NOW).freshness == "fresh"
    assert usage_view(entry(body, 61), NOW).freshness == "stale"
    assert usage_view(entry(body, 3600), NOW).freshness == "stale"
    old = usage_view(entry(body, 3601), NOW)
    assert old.freshness == "missing" and old.usage is None and old.expired and old.why == "expired"


def test_cold_cache_is_missing_without_an_entry() -> None:
    view = usage_view(None, NOW, account_id=3)
    assert view.account_id == 3 and view.freshness == "missing" and not view.expired and view.age(NOW) == 0


def test_corrupt_entry_is_missing_and_expired() -> None:
    view = usage_view(entry("{not json", 5), NOW)
    assert view.freshness == "missing" and view.expired and view.why == "corrupt"


def test_passed_reset_deadline_invalidates_the_entry() -> None:
    view = usage_view(entry(payload(win(90, 100)), 100), NOW)
    assert view.freshness == "missing" and view.why == "reset passed"
    assert usage_view(entry(payload(win(90, 100)), 99), NOW).freshness == "stale"


def test_deadline_covers_windows_without_a_length() -> None:
    body = {"rate_limit": {"primary_window": {"used_percent": 10, "reset_after_seconds": 30}}}
    assert usage_view(entry(body, 31), NOW).freshness == "missing"


def test_dormant_windows_never_force_expiry() -> None:
    # An untouched 5-minute window would "reset" after 300 s; it does not expire the entry.
    assert usage_view(entry(payload(win(0, 300, 300)), 1000), NOW).freshness == "stale"
    # A started window does, even at 0 % used.
    assert usage_view(entry(payload(win(0, 120)), 121), NOW).freshness == "missing"
    # Mixed: the untouched 5h window is ignored, the 7d window decides.
    mixed = payload(win(0, 18000), win(30, 4000, 604800))
    assert usage_view(entry(mixed, 3000), NOW).freshness == "stale"
    assert usage_view(entry(mixed, 4000), NOW).freshness == "missing"


def test_reset_after_zero_means_just_reset_not_expired() -> None:
    # Gap 13: the seed made such an entry always expired (a refetch on every request).
    view = usage_view(entry(payload(win(100, 0)), 10), NOW)
    assert view.freshness == "fresh" and view.just_reset


def test_just_reset_refetch_is_rate_limited() -> None:
    view = usage_view(entry(payload(win(100, 0)), 10), NOW)
    assert wants_refetch(view, None, NOW)
    assert not wants_refetch(view, NOW - 30, NOW)
    assert wants_refetch(view, NOW - 60, NOW)


def test_fresh_views_do_not_want_a_refetch_and_stale_ones_do() -> None:
    assert not wants_refetch(usage_view(entry(payload(win(5, 9000)), 10), NOW), None, NOW)
    stale = usage_view(entry(payload(win(5, 9000)), 120), NOW)
    assert wants_refetch(stale, None, NOW) and not wants_refetch(stale, NOW - 1, NOW)
    assert wants_refetch(usage_view(None, NOW), None, NOW)


def test_reset_at_only_windows_are_anchored_to_the_observation_time() -> None:
    body = {
        "rate_limit": {
            "primary_window": {"used_percent": 40, "limit_window_seconds": 18000, "reset_at": NOW + 500}
        }
    }
    view = usage_view(entry(body, 100), NOW)
    assert view.usage is not None and view.usage.primary is not None
    assert view.usage.primary.reset_after_seconds == 600  # measured from updated_at
    assert usage_view(entry(body, 100), NOW + 500).freshness == "missing"


def test_age() -> None:
    view = usage_view(entry(payload(win(5, 9000)), 42), NOW)
    assert view.age(NOW) == 42
    assert view.age(NOW - 100) == 0  # the clock went back


def test_poller_revalidates_active_accounts_after_3_min_and_idle_ones_after_10() -> None:
    body = payload(win(5, 90000))
    assert not should_revalidate(usage_view(entry(body, 120), NOW), NOW - 10, NOW)
    assert should_revalidate(usage_view(entry(body, 180.001), NOW), NOW - 10, NOW)
    assert not should_revalidate(usage_view(entry(body, 400), NOW), NOW - 301, NOW)
    assert not should_revalidate(usage_view(entry(body, 400), NOW), None, NOW)
    assert should_revalidate(usage_view(entry(body, 600.001), NOW), None, NOW)  # idle: slow pace
    assert should_revalidate(usage_view(entry(body, 600.001), NOW), NOW - 301, NOW)
    assert should_revalidate(usage_view(None, NOW), NOW, NOW)
    assert should_revalidate(usage_view(None, NOW), None, NOW)


def test_a_blocked_limit_from_a_429_expires_at_its_reset() -> None:
    body = {"rate_limit": {"allowed": False, "limit_reached": True, "resets_at": NOW + 100}}
    view = usage_view(entry(body, 10), NOW)
    assert view.usage is not None and view.usage.blocked
    assert usage_view(entry(body, 10), NOW + 100).freshness == "missing"


def test_huge_integers_are_dropped_not_fatal() -> None:
    usage = parse_usage(
        '{"plan_type": "plus", "rate_limit": {"primary_window": {"used_percent": 1' + "0" * 400 + "}}}"
    )
    assert usage is not None and usage.plan_type == "plus" and usage.primary is None
