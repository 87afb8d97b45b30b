"""Fast mode: whether an attempt asks for ``service_tier: "priority"``.

Priority costs quota faster, so it is turned on only while the chosen account is spending slower
than its windows recover: the main (longest) window's pace-relative score, minus the debt of any
shorter window running ahead of pace, must clear a gate (0.05; −0.02 to stay on, for hysteresis),
shifted by ``fast-mode-bias``. The caller's own tier always wins. Decided per attempt, after
selection; it never changes ordering. Pure: ``now`` is a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, overload

from tray.quota.usage import UsageView, is_complete, windows
from tray.routing.ranking import RoutingSettings
from tray.routing.scoring import LOW_CAP, guard_weight, normalized, plan_weight

GATE_ON = 0.05  # to turn fast mode on, the score must be this far ahead of pace ...
GATE_KEEP = -0.02  # ... and to keep it on for the same sticky account, no further behind than this
TIER_KEYS = ("service_tier", "serviceTier")
PRIORITY_MEMBER = b'"service_tier":"priority"'
_BLANK = b" \t\r\n"  # JSON's whitespace


@dataclass(frozen=True)
class FastDecision:
    """``on``: add ``service_tier: "priority"``. ``note``: the activity-view text (seed §11.3).
    ``reason``: ``always``, ``ok``, ``low score``, ``config``, ``manual``, ``blocked``, ``low cap``
    or ``no data``. ``score``/``gate`` are set when the score decided."""

    on: bool
    note: str
    reason: str
    score: float | None = None
    gate: float | None = None


def caller_tier(body: Mapping[str, Any]) -> bool:
    """The caller chose a tier itself (a ``null`` value is no choice: fast mode still decides)."""
    return any(body.get(key) is not None for key in TIER_KEYS)


def _q3(value: float) -> Decimal:
    """Round like JavaScript's ``toFixed(3)``: half up on the exact binary value."""
    return Decimal(value).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def _points(value: float) -> str:
    text = f"{_q3(value) * 100:.3f}"
    return "0.000" if text == "-0.000" else text


def signed(value: float) -> str:
    """``0.756`` → ``+75.600``: rounded to 3 decimals, then shown ×100 with a sign."""
    text = _points(value)
    return text if text.startswith("-") else "+" + text


def gate_term(gate: float) -> str:
    amount = f"{_q3(abs(gate) * 100):.3f}"
    return f" - gate {amount}" if gate >= 0 else f" + gate {amount}"


def _wrap(on: bool, head: str, detail: str) -> str:
    return f"Fast: {'enabled' if on else 'disabled'} {head}\n      ({detail})"


def _off(reason: str, label: str | None = None) -> FastDecision:
    shown = {"manual": "manual tier", "low cap": f"cap<3%, {label}" if label else "cap<3%"}.get(
        reason, reason
    )
    return FastDecision(False, f"Fast: disabled ({shown})", reason)


def decide(
    body: Mapping[str, Any] | None,
    view: UsageView | None,
    settings: RoutingSettings,
    previous: bool | None,
    now: float,
) -> FastDecision:
    """Fast mode for one attempt on the account ``view`` describes. ``previous``: the session's
    fast flag, only when this attempt's account is its active sticky account."""
    if not isinstance(body, Mapping):
        return _off("no data")
    if caller_tier(body):
        return _off("manual")
    if settings.fast_mode == "disabled":
        return _off("config")
    if settings.fast_mode == "always":
        return FastDecision(True, "Fast: enabled (config)", "always")
    usage = view.usage if view is not None and view.usable else None
    if usage is None or view is None:
        return _off("no data")
    if usage.blocked:
        return _off("blocked")  # say why: "no data" would hide that the account is at its limit
    present = windows(usage)
    if not present or not all(is_complete(w) for _, w in present):
        return _off("no data")
    for label, w in present:
        if 1 - min(max(w.used_percent or 0.0, 0.0), 100.0) / 100 < LOW_CAP:
            return _off("low cap", label)
    main_label, main = present[0]
    for label, w in present[1:]:
        if (w.window_seconds or 0) > (main.window_seconds or 0):
            main_label, main = label, w
    main_norm = normalized(main, plan_weight(usage.plan_type))
    if main_norm is None:
        return _off("no data")
    age, debt = view.age(now), 0.0
    for label, guard in present:
        if label == main_label:
            continue
        unaged = normalized(guard)
        if unaged is None:
            return _off("no data")
        adjusted = normalized(guard, 1.0, age)
        pressure = adjusted if adjusted is not None else unaged
        debt = max(debt, guard_weight(main, guard, age) * max(0.0, -pressure))
    final = main_norm - debt
    gate = (GATE_KEEP if previous else GATE_ON) - settings.fast_mode_bias
    on = final >= gate
    if debt > 0:
        detail = f"{signed(main_norm)} - guard {_points(debt)}{gate_term(gate)}"
    else:
        detail = f"{signed(final)}{gate_term(gate)}"
    return FastDecision(on, _wrap(on, signed(final - gate), detail), "ok" if on else "low score", final, gate)


def _decorated(parsed: Mapping[str, Any]) -> bytes:
    obj = {k: v for k, v in parsed.items() if not (k in TIER_KEYS and v is None)}
    obj["service_tier"] = "priority"
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _with_priority(original: bytes, parsed: Mapping[str, Any]) -> bytes:
    """``original`` asking for priority. The member is appended to the client's own bytes (one copy,
    nothing re-serialized); only a body with a null tier key to drop, or that is no plain ``{...}``
    text, is parsed whole and rebuilt."""
    if not any(key in parsed for key in TIER_KEYS):
        appended = with_member(original, PRIORITY_MEMBER)
        if appended is not None:
            return appended
    return _decorated(json.loads(original))


def with_member(raw: bytes, member: bytes) -> bytes | None:
    """``raw`` (one JSON object's text) with ``member`` (``b'"name":value'``) added as its last
    member, in one copy; ``None`` when ``raw`` is not ``{...}`` in UTF-8 (UTF-16 text, a byte-order
    mark), which the caller then rebuilds."""
    end = len(raw)
    while end and raw[end - 1] in _BLANK:
        end -= 1
    start = 0
    while start < end and raw[start] in _BLANK:
        start += 1
    if end - start < 2 or raw[start] != ord("{") or raw[end - 1] != ord("}"):
        return None
    last = end - 2
    while last > start and raw[last] in _BLANK:
        last -= 1
    comma = b"" if last == start else b","
    return b"".join((memoryview(raw)[: end - 1], comma, member, b"}"))


@overload
def attempt_body(original: bytes, parsed: Mapping[str, Any] | None, decision: FastDecision) -> bytes: ...
@overload
def attempt_body(original: Mapping[str, Any], parsed: FastDecision) -> bytes: ...
def attempt_body(
    original: bytes | Mapping[str, Any],
    parsed: Mapping[str, Any] | FastDecision | None,
    decision: FastDecision | None = None,
) -> bytes:
    """This attempt's body: when fast mode is on, the original bytes with ``"service_tier":"priority"``
    appended as the object's last member (see :func:`with_member`); otherwise the original bytes
    untouched. ``parsed`` needs only the body's tier keys, if it has any. The short form
    ``attempt_body(parsed, decision)`` serializes ``parsed`` either way."""
    if isinstance(parsed, FastDecision):  # short form: (parsed, decision)
        obj = original if isinstance(original, Mapping) else {}
        if parsed.on and not caller_tier(obj):
            return _decorated(obj)
        return json.dumps(dict(obj), separators=(",", ":"), ensure_ascii=False).encode()
    raw = original if isinstance(original, bytes) else b""
    if decision is None or not decision.on or parsed is None or caller_tier(parsed):
        return raw
    return _with_priority(raw, parsed)
