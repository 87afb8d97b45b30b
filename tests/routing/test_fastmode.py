"""Fast mode (service_tier "priority"): the seed's §7 gate, hysteresis, bias, guards, low-cap and
caller-tier rules, the activity-view notes of §11.3, and the per-attempt body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tray.models import QuotaEntry, Window
from tray.quota.usage import UsageView, usage_view
from tray.routing.fastmode import FastDecision, attempt_body, decide, gate_term, signed, with_member
from tray.routing.ranking import RoutingSettings
from tray.routing.scoring import normalized

NOW = 1_800_000_000.0
AUTO = RoutingSettings()
BODY: dict[str, Any] = {"model": "gpt-5", "input": "hi", "stream": True}


def win(used: float, reset: float, span: float = 18000) -> dict[str, float]:
    return {"used_percent": used, "reset_after_seconds": reset, "limit_window_seconds": span}


def view(
    primary: dict[str, Any] | None = None,
    secondary: dict[str, Any] | None = None,
    age: float = 0,
    **flags: Any,
) -> UsageView:
    limit: dict[str, Any] = {"allowed": True, "limit_reached": False, **flags}
    if primary is not None:
        limit["primary_window"] = primary
    if secondary is not None:
        limit["secondary_window"] = secondary
    raw = json.dumps({"plan_type": "plus", "rate_limit": limit})
    return usage_view(QuotaEntry(1, raw, NOW - age), NOW)


def used_for(target: float, reset: float, span: float = 18000, age: float = 0) -> float:
    """The used % at which a window's (aged) normalized score equals ``target`` (bisection)."""
    lo, hi = 0.0, 99.999
    for _ in range(200):
        mid = (lo + hi) / 2
        score = normalized(Window(mid, span, reset), 1.0, age)
        lo, hi = (mid, hi) if score is not None and score > target else (lo, mid)
    return (lo + hi) / 2


def fast_window(x: float) -> dict[str, float]:
    """A window at 900 of 18 000 s whose fast score is x."""
    return win(used_for(x, 900), 900)


def run(
    v: UsageView | None, settings: RoutingSettings = AUTO, previous: bool | None = None, body: Any = BODY
) -> FastDecision:
    return decide(body, v, settings, previous, NOW)


# --- formatting -------------------------------------------------------------------------------------


def test_signed_and_gate_formatting_round_half_up() -> None:
    assert signed(0.756) == "+75.600"
    assert signed(0.80590) == "+80.600"
    assert signed(-0.0604) == "-6.000"
    assert signed(-0.0) == "+0.000"
    assert signed(-0.0001) == "+0.000"  # rounds to -0: shown as +0.000
    assert signed(0.0045) == "+0.400"  # 0.0045 is just below the tie in binary: down, as toFixed
    assert signed(0.0125) == "+1.300"  # just above the tie: up
    assert signed(0.0005) == "+0.100"  # 0.0005 is just above the tie in binary: half up
    assert gate_term(0.05) == " - gate 5.000"
    assert gate_term(0.05 - 0.03) == " - gate 2.000"
    assert gate_term(0.05 + 0.02) == " - gate 7.000"
    assert gate_term(0.05 - 0.1) == " + gate 5.000"


# --- preconditions ----------------------------------------------------------------------------------


def test_always_mode_needs_no_usage() -> None:
    d = run(None, RoutingSettings(fast_mode="always"))
    assert d.on and d.note == "Fast: enabled (config)" and d.reason == "always"


def test_disabled_mode() -> None:
    d = run(view(fast_window(0.5)), RoutingSettings(fast_mode="disabled"))
    assert not d.on and d.note == "Fast: disabled (config)"


@pytest.mark.parametrize("key", ["service_tier", "serviceTier"])
def test_caller_tier_always_wins(key: str) -> None:
    body = {**BODY, key: "auto"}
    for mode in ("auto", "always"):
        d = run(view(fast_window(0.5)), RoutingSettings(fast_mode=mode), body=body)
        assert not d.on and d.note == "Fast: disabled (manual tier)"
    original = json.dumps(body).encode()
    assert attempt_body(original, body, FastDecision(True, "", "ok")) == original


def test_null_caller_tier_is_no_choice() -> None:
    # Gap 22: the seed took "service_tier": null for a manual tier.
    body = {**BODY, "service_tier": None}
    d = run(view(fast_window(0.5)), body=body)
    assert d.on
    sent = json.loads(attempt_body(json.dumps(body).encode(), body, d))
    assert sent["service_tier"] == "priority" and list(sent)[-1] == "service_tier"


@pytest.mark.parametrize("body", [None, [1, 2], "text"])
def test_no_json_object_means_no_data(body: Any) -> None:
    assert run(view(fast_window(0.5)), body=body).note == "Fast: disabled (no data)"


def test_missing_usage_means_no_data() -> None:
    assert run(None).note == "Fast: disabled (no data)"
    assert run(usage_view(None, NOW, account_id=1)).note == "Fast: disabled (no data)"
    assert run(view()).note == "Fast: disabled (no data)"  # rate_limit without windows
    incomplete = view({"used_percent": 10, "reset_after_seconds": 900})
    assert run(incomplete).note == "Fast: disabled (no data)"


def test_blocked_limit_says_blocked() -> None:
    # Gap 22c: the seed's "(blocked)" was unreachable and showed "(no data)".
    d = run(view(fast_window(0.5), allowed=False))
    assert not d.on and d.reason == "blocked" and d.note == "Fast: disabled (blocked)"


def test_low_cap_vetoes_with_its_window() -> None:
    d = run(view(win(98, 900)))
    assert not d.on and d.note == "Fast: disabled (cap<3%, rate.primary)"
    guard = run(view(win(10, 60480, 604800), win(98, 9000)))
    assert guard.note == "Fast: disabled (cap<3%, rate.secondary)"


# --- score and gate ---------------------------------------------------------------------------------


def test_under_burned_window_turns_fast_mode_on() -> None:
    d = run(view(win(79, 1800)))  # 79 % used with 10 % of the window left
    assert d.on and d.note == "Fast: enabled +75.600\n      (+80.600 - gate 5.000)"


def test_near_reset_windows_enable_fast_mode() -> None:
    assert run(view(win(90, 900))).on  # 90 % used, 5 % left


@pytest.mark.parametrize("span", [18000, 604800])
def test_same_progress_decides_the_same_on_5h_and_7d(span: float) -> None:
    d = run(view(win(19, 0.8 * span, span)))
    assert not d.on and d.reason == "low score"


@pytest.mark.parametrize(
    ("t", "turn_on", "stay_on"),
    [
        (0.95, 1.93, 6.02),
        (0.80, 17.26, 20.93),
        (0.50, 48.05, 50.69),
        (0.20, 79.09, 80.34),
        (0.10, 89.52, 90.18),
        (0.05, 94.75, 95.09),
    ],
)
def test_gate_table_thresholds(t: float, turn_on: float, stay_on: float) -> None:
    reset = t * 18000
    assert run(view(win(turn_on - 0.01, reset))).on
    assert not run(view(win(turn_on + 0.01, reset))).on
    assert run(view(win(stay_on - 0.01, reset)), previous=True).on
    assert not run(view(win(stay_on + 0.01, reset)), previous=True).on


def test_bias_makes_fast_mode_more_eager() -> None:
    d = run(view(fast_window(0.03)), RoutingSettings(fast_mode_bias=0.03))
    assert d.on and d.note.endswith("- gate 2.000)")


def test_negative_bias_makes_fast_mode_more_conservative() -> None:
    d = run(view(fast_window(0.06)), RoutingSettings(fast_mode_bias=-0.02))
    assert not d.on and d.note.endswith("- gate 7.000)")


def test_large_bias_shows_a_negative_gate_with_its_sign() -> None:
    assert run(view(fast_window(0.0)), RoutingSettings(fast_mode_bias=0.1)).note.endswith("+ gate 5.000)")


def test_hysteresis_keeps_a_sticky_account_on_inside_the_band() -> None:
    assert not run(view(fast_window(0.018))).on
    assert run(view(fast_window(0.018)), previous=True).on
    assert run(view(fast_window(-0.04)), RoutingSettings(fast_mode_bias=0.03), previous=True).on
    off = run(view(fast_window(-0.06)), previous=True)
    assert not off.on and off.note.startswith("Fast: disabled -")


def test_main_window_is_the_longest_and_a_dormant_guard_adds_no_debt() -> None:
    d = run(view(win(0, 18000), win(79, 60480, 604800)))
    assert d.on and d.note == "Fast: enabled +75.600\n      (+80.600 - gate 5.000)"


def test_guard_debt_is_aged_by_the_cache_age() -> None:
    age = 600.0
    guard = win(used_for(-0.739, 9000, age=age), 9000)
    d = decide(BODY, view(guard, win(79, 60480, 604800), age=age), AUTO, None, NOW)
    assert d.note == "Fast: enabled +1.700\n      (+80.600 - guard 73.900 - gate 5.000)"


def test_guard_debt_is_dropped_when_windows_reset_together() -> None:
    d = run(view(win(60, 3600), win(79, 3600, 604800)))
    assert "guard" not in d.note


def test_partial_guard_debt_matches_the_model() -> None:
    main, guard = Window(10, 604800, 14400), Window(90, 18000, 12600)
    d = run(view(win(90, 12600), win(10, 14400, 604800)))
    main_norm, guard_norm = normalized(main), normalized(guard)
    assert main_norm is not None and guard_norm is not None
    debt = 0.1 * -guard_norm
    assert d.score == pytest.approx(main_norm - debt)
    assert f"- guard {signed(debt)[1:]}" in d.note


def test_equal_spans_count_as_guards_in_fast_mode() -> None:
    d = run(view(win(10, 9000), win(90, 3600)))
    assert "- guard" in d.note


def test_stale_usage_still_decides() -> None:
    assert run(view(win(79, 1800), age=120)).on


# --- attempt body -----------------------------------------------------------------------------------


def test_attempt_body_appends_priority_to_the_clients_own_bytes() -> None:
    original = json.dumps({"model": "gpt-5", "input": "héllo", "t": 1.50}, indent=2).encode()
    on = FastDecision(True, "", "ok")
    sent = attempt_body(original, {"model": "gpt-5"}, on)
    assert sent == original[:-1] + b',"service_tier":"priority"}'
    assert json.loads(sent) == {**json.loads(original), "service_tier": "priority"}


@pytest.mark.parametrize(("raw", "expected"), [
    (b"{}", b'{"a":1}'),
    (b" { \n } \r\n", b' { \n "a":1}'),
    (b'{"x": [1, {}]}  ', b'{"x": [1, {}],"a":1}'),
    ('{"x": 1}'.encode("utf-16"), None),  # not UTF-8 text: the caller rebuilds it
    (b'\xef\xbb\xbf{"x": 1}', None),
    (b"[1]", None),
])
def test_a_member_is_appended_to_an_objects_text(raw: bytes, expected: bytes | None) -> None:
    assert with_member(raw, b'"a":1') == expected


def test_a_body_that_is_not_plain_text_is_rebuilt_with_priority() -> None:
    original = '{"model": "gpt-5"}'.encode("utf-16")
    sent = attempt_body(original, {"model": "gpt-5"}, FastDecision(True, "", "ok"))
    assert sent == b'{"model":"gpt-5","service_tier":"priority"}'


def test_attempt_body_is_untouched_when_off() -> None:
    original = b'{ "model" : "gpt-5" }'
    assert attempt_body(original, {"model": "gpt-5"}, FastDecision(False, "", "low score")) == original
    assert attempt_body(b"not json", None, FastDecision(True, "", "always")) == b"not json"


def test_attempt_body_short_form() -> None:
    assert attempt_body({"a": 1}, FastDecision(True, "", "ok")) == b'{"a":1,"service_tier":"priority"}'
    assert attempt_body({"a": 1}, FastDecision(False, "", "ok")) == b'{"a":1}'


# --- additional limits and failover -----------------------------------------------------------------


def view_with_additional(primary: dict[str, Any] | None, additional: dict[str, Any]) -> UsageView:
    limit: dict[str, Any] = {"allowed": True, "limit_reached": False}
    if primary is not None:
        limit["primary_window"] = primary
    raw = json.dumps(
        {
            "plan_type": "plus",
            "rate_limit": limit,
            "additional_rate_limits": [{"limit_name": "spark", "rate_limit": additional}],
        }
    )
    return usage_view(QuotaEntry(1, raw, NOW), NOW)


def test_additional_rate_limits_never_veto_or_enable_fast_mode() -> None:
    exhausted = {"allowed": False, "limit_reached": True, "primary_window": win(100, 900)}
    untouched = {"primary_window": win(0, 18000)}
    incomplete = {"primary_window": {"used_percent": 5}}
    for extra in (exhausted, untouched, incomplete):
        d = run(view_with_additional(win(79, 1800), extra))
        assert d.on and d.note == "Fast: enabled +75.600\n      (+80.600 - gate 5.000)"
    assert (
        run(view_with_additional(None, {"primary_window": win(79, 1800)})).note == "Fast: disabled (no data)"
    )


def test_each_failover_attempt_decides_for_its_own_account() -> None:
    original = json.dumps(BODY).encode()
    healthy, spent = view(win(79, 1800)), view(win(98, 900))
    first = attempt_body(original, BODY, run(healthy))
    second = attempt_body(original, BODY, run(spent))
    assert json.loads(first)["service_tier"] == "priority"
    assert second == original
