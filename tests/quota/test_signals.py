"""Live quota signals (x-codex-* headers, codex.rate_limits events, 429 bodies) and merging them
into the cached usage payload."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tray.models import QuotaEntry
from tray.quota.signals import merge_payload, payload_from_429, payload_from_event, payload_from_headers
from tray.quota.usage import parse_usage, usage_view

NOW = 1_800_000_000.0

HEADERS = {
    "X-Codex-Primary-Used-Percent": "42.5",
    "X-Codex-Primary-Window-Minutes": "300",
    "X-Codex-Primary-Reset-At": str(int(NOW + 3600)),
    "X-Codex-Primary-Reset-After-Seconds": "3600",
    "x-codex-secondary-used-percent": "12",
    "x-codex-secondary-window-minutes": "10080",
    "x-codex-secondary-reset-at": str(int(NOW + 86400)),
}


def test_headers_become_a_usage_payload() -> None:
    payload = payload_from_headers(HEADERS, NOW)
    assert payload is not None
    usage = parse_usage(payload)
    assert usage is not None and not usage.blocked
    assert usage.primary is not None and usage.secondary is not None
    assert (usage.primary.used_percent, usage.primary.window_seconds) == (42.5, 18000)
    assert usage.primary.reset_after_seconds == 3600 and usage.primary.reset_at == NOW + 3600
    assert usage.secondary.window_seconds == 604800
    assert usage.secondary.reset_after_seconds == 86400  # derived from reset-at


def test_older_headers_with_only_reset_after_seconds() -> None:
    payload = payload_from_headers(
        {"x-codex-primary-used-percent": "10", "x-codex-primary-reset-after-seconds": "60"}, NOW
    )
    assert payload is not None
    assert payload["rate_limit"]["primary_window"] == {
        "used_percent": 10.0,
        "reset_after_seconds": 60.0,
        "reset_at": NOW + 60,
    }


def test_no_rate_limit_headers_gives_none() -> None:
    assert payload_from_headers({"content-type": "text/event-stream"}, NOW) is None
    assert payload_from_headers({"x-codex-primary-used-percent": "lots"}, NOW) is None


def test_plan_type_header() -> None:
    payload = payload_from_headers({**HEADERS, "X-Codex-Plan-Type": "Pro"}, NOW)
    assert payload is not None and payload["plan_type"] == "pro"


def test_rate_limits_event() -> None:
    event = {
        "type": "codex.rate_limits",
        "plan_type": "plus",
        "rate_limits": {
            "primary": {"used_percent": 30, "window_minutes": 300, "reset_at": NOW + 600},
            "secondary": {"used_percent": 5, "window_minutes": 10080, "reset_at": NOW + 6000},
        },
        "credits": {"has_credits": False},
    }
    payload = payload_from_event(event, NOW)
    usage = parse_usage(payload)
    assert usage is not None and usage.plan_type == "plus"
    assert usage.primary is not None and usage.primary.reset_after_seconds == 600
    assert usage.secondary is not None and usage.secondary.window_seconds == 604800


def test_event_without_now_is_anchored_by_the_cache_view() -> None:
    event = {
        "type": "codex.rate_limits",
        "rate_limits": {"primary": {"used_percent": 30, "window_minutes": 300, "reset_at": NOW + 600}},
    }
    payload = payload_from_event(event)
    view = usage_view(QuotaEntry(1, json.dumps(payload), NOW), NOW)
    assert view.usage is not None and view.usage.primary is not None
    assert view.usage.primary.reset_after_seconds == 600


def test_other_events_and_other_limit_families_are_ignored() -> None:
    assert payload_from_event({"type": "response.created"}, NOW) is None
    spark = {
        "type": "codex.rate_limits",
        "limit_name": "GPT-5.3-Codex-Spark",
        "rate_limits": {"primary": {"used_percent": 99}},
    }
    assert payload_from_event(spark, NOW) is None
    assert payload_from_event({"type": "codex.rate_limits", "rate_limits": {}}, NOW) is None


USAGE_LIMIT_BODY = json.dumps(
    {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": "plus",
            "resets_at": NOW + 7200,
            "resets_in_seconds": 7200,
        }
    }
).encode()


def test_usage_limit_429_marks_the_limit_reached_with_its_reset() -> None:
    payload = payload_from_429({}, USAGE_LIMIT_BODY, NOW)
    usage = parse_usage(payload)
    assert usage is not None and usage.blocked and usage.blocked_until == NOW + 7200
    assert usage.plan_type == "plus"


def test_usage_limit_429_with_headers_keeps_the_windows() -> None:
    headers = {**HEADERS, "x-codex-primary-used-percent": "100"}
    usage = parse_usage(payload_from_429(headers, b"", NOW))
    assert usage is not None and usage.blocked and usage.primary is not None
    assert usage.primary.used_percent == 100


def test_plain_rate_limit_429_does_not_block_the_account() -> None:
    assert payload_from_429({}, b"slow down", NOW) is None
    usage = parse_usage(payload_from_429(HEADERS, b'{"error": {"type": "rate_limit_exceeded"}}', NOW))
    assert usage is not None and not usage.blocked


def test_merge_keeps_fields_the_signal_lacks() -> None:
    old = {
        "plan_type": "pro",
        "account_id": "acc",
        "rate_limit": {
            "allowed": True,
            "primary_window": {"used_percent": 10, "limit_window_seconds": 18000, "reset_after_seconds": 100},
            "secondary_window": {
                "used_percent": 3,
                "limit_window_seconds": 604800,
                "reset_after_seconds": 9000,
                "reset_at": NOW + 8000,
            },
        },
        "additional_rate_limits": [{"rate_limit": {}}],
    }
    new = payload_from_headers(
        {"x-codex-primary-used-percent": "55", "x-codex-primary-window-minutes": "300"}, NOW
    )
    assert new is not None
    merged = merge_payload(old, new, NOW)
    assert merged["plan_type"] == "pro" and merged["account_id"] == "acc"
    assert merged["additional_rate_limits"] == [{"rate_limit": {}}]
    assert merged["rate_limit"]["primary_window"]["used_percent"] == 55
    # The untouched weekly window is kept and re-based to now.
    assert merged["rate_limit"]["secondary_window"]["reset_after_seconds"] == 8000


def test_merge_matches_windows_by_length() -> None:
    old = {
        "rate_limit": {
            "secondary_window": {"used_percent": 3, "limit_window_seconds": 604800, "reset_after_seconds": 9}
        }
    }
    new = {
        "rate_limit": {
            "primary_window": {"used_percent": 20, "limit_window_seconds": 604800, "reset_after_seconds": 5}
        }
    }
    merged = merge_payload(old, new)
    assert "secondary_window" not in merged["rate_limit"]  # the weekly window moved slots


def test_a_served_response_clears_a_blocked_429_state() -> None:
    blocked = payload_from_429({}, USAGE_LIMIT_BODY, NOW)
    assert blocked is not None
    served = payload_from_headers(HEADERS, NOW + 8000)
    assert served is not None
    usage = parse_usage(merge_payload(blocked, served))
    assert usage is not None and not usage.blocked and usage.blocked_until is None
    assert usage.plan_type == "plus"


def test_merge_into_nothing() -> None:
    new = {"rate_limit": {"allowed": True}}
    assert merge_payload(None, new) == new


header_text = st.text(max_size=12) | st.sampled_from(["", "nan", "inf", "-1", "1e400", "100", "0", "12.5"])
header_names = st.sampled_from(
    [
        f"x-codex-{slot}-{field}"
        for slot in ("primary", "secondary")
        for field in ("used-percent", "window-minutes", "reset-at", "reset-after-seconds")
    ]
    + ["retry-after", "x-codex-plan-type"]
)
junk_headers = st.dictionaries(header_names | st.text(max_size=10), header_text, max_size=10)
junk_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=25,
)


@settings(deadline=None)  # timing varies on a loaded CI machine
@given(junk_headers, st.floats(min_value=0, max_value=4e9))
def test_payload_from_headers_never_raises(headers: dict[str, str], now: float) -> None:
    payload = payload_from_headers(headers, now)
    if payload is not None:
        parse_usage(payload)


@settings(deadline=None)  # timing varies on a loaded CI machine
@given(
    st.fixed_dictionaries(
        {"type": st.just("codex.rate_limits")},
        optional={
            "rate_limits": st.dictionaries(st.sampled_from(["primary", "secondary"]), junk_json) | junk_json,
            "limit_name": junk_json,
            "plan_type": junk_json,
        },
    )
    | st.dictionaries(st.text(max_size=8), junk_json),
    st.none() | st.floats(min_value=0, max_value=4e9),
)
def test_payload_from_event_never_raises(event: dict[str, Any], now: float | None) -> None:
    payload = payload_from_event(event, now)
    if payload is not None:
        parse_usage(payload)


@settings(deadline=None)  # timing varies on a loaded CI machine
@given(junk_headers, st.binary(max_size=40) | junk_json.map(lambda v: json.dumps({"error": v}).encode()))
def test_payload_from_429_never_raises(headers: dict[str, str], body: bytes) -> None:
    payload = payload_from_429(headers, body, NOW)
    if payload is not None:
        merge_payload({"plan_type": "plus"}, payload, NOW)
