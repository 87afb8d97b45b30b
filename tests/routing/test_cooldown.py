"""Cooldowns: the best 429 signal wins (body, x-codex headers, Retry-After, cached usage, default),
entitlement errors, and short cooldowns for failures. Junk never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tray.models import QuotaEntry, Usage, Window
from tray.quota.usage import usage_view
from tray.routing.cooldown import after_429, after_failure, is_entitlement_error

NOW = 1_800_000_000.0


def usage_limit(**error: object) -> bytes:
    return json.dumps(
        {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached", **error}}
    ).encode()


EXHAUSTED_HEADERS = {
    "x-codex-primary-used-percent": "100",
    "x-codex-primary-window-minutes": "300",
    "x-codex-primary-reset-at": str(int(NOW + 4000)),
    "x-codex-secondary-used-percent": "40",
    "x-codex-secondary-window-minutes": "10080",
    "x-codex-secondary-reset-at": str(int(NOW + 400000)),
}


def test_body_resets_at_wins() -> None:
    body = usage_limit(resets_at=NOW + 7200, resets_in_seconds=9999)
    assert after_429({**EXHAUSTED_HEADERS, "Retry-After": "30"}, body, None, NOW) == (NOW + 7200, "body")


def test_body_resets_in_seconds_when_resets_at_is_missing() -> None:
    assert after_429({}, usage_limit(resets_in_seconds=300), None, NOW) == (NOW + 300, "body")


def test_body_reset_in_the_past_still_rests_one_second() -> None:
    assert after_429({}, usage_limit(resets_at=NOW - 50), None, NOW) == (NOW + 1, "body")


def test_implausible_body_reset_falls_through() -> None:
    # resets_at in milliseconds by mistake: far beyond any window, so the next signal decides.
    body = usage_limit(resets_at=NOW * 1000)
    assert after_429({"retry-after": "30"}, body, None, NOW) == (NOW + 30, "retry-after")


def test_exhausted_window_headers_come_next() -> None:
    assert after_429({**EXHAUSTED_HEADERS, "retry-after": "30"}, b"", None, NOW) == (NOW + 4000, "headers")


def test_headers_of_windows_under_the_limit_do_not_count() -> None:
    headers = {**EXHAUSTED_HEADERS, "x-codex-primary-used-percent": "80"}
    assert after_429(headers, b"", None, NOW) == (NOW + 60, "default")


def test_headers_with_only_reset_after_seconds() -> None:
    headers = {"x-codex-secondary-used-percent": "100", "x-codex-secondary-reset-after-seconds": "900"}
    assert after_429(headers, b"{}", None, NOW) == (NOW + 900, "headers")


def test_retry_after_seconds_and_fractions() -> None:
    assert after_429({"Retry-After": "120"}, b"", None, NOW) == (NOW + 120, "retry-after")
    assert after_429({"retry-after": "1.5"}, b"", None, NOW) == (NOW + 1.5, "retry-after")


def test_retry_after_zero_or_negative_rests_one_second() -> None:
    # Gap 23: the seed sent these through the JavaScript date parser.
    assert after_429({"retry-after": "0"}, b"", None, NOW) == (NOW + 1, "retry-after")
    assert after_429({"retry-after": "-5"}, b"", None, NOW) == (NOW + 1, "retry-after")


def test_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 600, tz=UTC)
    assert after_429({"retry-after": format_datetime(when, usegmt=True)}, b"", None, NOW) == (
        NOW + 600,
        "retry-after",
    )
    past = datetime.fromtimestamp(NOW - 600, tz=UTC)
    assert after_429({"retry-after": format_datetime(past, usegmt=True)}, b"", None, NOW) == (
        NOW + 1,
        "retry-after",
    )


def test_unparseable_retry_after_falls_through() -> None:
    assert after_429({"retry-after": "soon"}, b"", None, NOW) == (NOW + 60, "default")


def test_cached_usage_blocking_window() -> None:
    # Gap 12: the seed probed a blocked account every minute although usage said it resets in hours.
    raw = json.dumps(
        {
            "rate_limit": {
                "allowed": False,
                "limit_reached": True,
                "primary_window": {
                    "used_percent": 45,
                    "limit_window_seconds": 18000,
                    "reset_after_seconds": 600,
                },
                "secondary_window": {
                    "used_percent": 100,
                    "limit_window_seconds": 604800,
                    "reset_after_seconds": 20000,
                },
            }
        }
    )
    view = usage_view(QuotaEntry(1, raw, NOW - 100), NOW)
    assert after_429({}, b"", view.usage, NOW) == (NOW + 19900, "usage")


def test_cached_usage_exhausted_window_without_flags() -> None:
    usage = Usage("plus", True, False, Window(100, 18000, 700, NOW + 700), None)
    assert after_429({}, b"", usage, NOW) == (NOW + 700, "usage")


def test_cached_usage_from_a_429_body() -> None:
    usage = Usage("plus", False, True, None, None, blocked_until=NOW + 333)
    assert after_429({}, b"", usage, NOW) == (NOW + 333, "usage")


def test_healthy_or_outdated_usage_gives_the_default() -> None:
    healthy = Usage("plus", True, False, Window(20, 18000, 700, NOW + 700), None)
    assert after_429({}, b"", healthy, NOW) == (NOW + 60, "default")
    outdated = Usage("plus", False, True, Window(100, 18000, 700, NOW - 5), None)
    assert after_429({}, b"", outdated, NOW) == (NOW + 60, "default")
    assert after_429({}, b"", None, NOW) == (NOW + 60, "default")


def test_entitlement_error() -> None:
    assert is_entitlement_error(b'{"error": {"type": "usage_not_included", "message": "no"}}')
    assert is_entitlement_error(b'{"error": {"code": "usage_not_included"}}')
    assert not is_entitlement_error(usage_limit(resets_in_seconds=5))
    assert not is_entitlement_error(b"")
    assert not is_entitlement_error(b"<html>forbidden</html>")


def test_failure_cooldowns_are_short() -> None:
    assert after_failure(NOW) == NOW + 15
    assert after_failure("transport", NOW) == NOW + 15
    assert after_failure("server_error", NOW) == NOW + 15
    assert after_failure("forbidden", NOW) == NOW + 30


junk_text = st.text(max_size=20) | st.sampled_from(
    ["", "0", "-1", "nan", "inf", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 99 Foo"]
)
junk_headers = st.dictionaries(
    st.sampled_from(
        [
            "retry-after",
            "Retry-After",
            "x-codex-primary-used-percent",
            "x-codex-primary-reset-at",
            "x-codex-secondary-reset-after-seconds",
            "x-codex-secondary-used-percent",
        ]
    )
    | st.text(max_size=8),
    junk_text,
    max_size=6,
)
junk_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=6),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(["resets_at", "resets_in_seconds", "type", "error", "x"]), c, max_size=4
        )
    ),
    max_leaves=20,
)
junk_windows = st.builds(
    Window,
    st.none() | st.floats(),
    st.none() | st.floats(min_value=1, max_value=1e9),
    st.none() | st.floats(min_value=0, max_value=1e12),
    st.none() | st.floats(),
)
junk_usage = st.none() | st.builds(
    Usage,
    st.none() | st.text(max_size=5),
    st.none() | st.booleans(),
    st.none() | st.booleans(),
    st.none() | junk_windows,
    st.none() | junk_windows,
    st.none(),
    st.none() | st.floats(),
)


@settings(deadline=None)  # timing varies on a loaded CI machine
@given(junk_headers, st.binary(max_size=40) | junk_json.map(lambda v: json.dumps(v).encode()), junk_usage)
def test_after_429_never_raises(headers: dict[str, str], body: bytes, usage: Usage | None) -> None:
    until, source = after_429(headers, body, usage, NOW)
    assert until >= NOW + 1 and source in ("body", "headers", "retry-after", "usage", "default")
    is_entitlement_error(body)
