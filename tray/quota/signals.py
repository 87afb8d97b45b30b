"""Live quota signals turned into ``wham/usage``-shaped payloads, and merged into the cached one.

Every response upstream sends carries the account's quota for free: ``x-codex-*`` headers, the
``codex.rate_limits`` stream event, and the body of a usage-limit 429. These pure functions turn each
into a payload that :func:`tray.quota.usage.parse_usage` reads; :func:`merge_payload` folds it into the
cached payload so fields the signal lacks (``plan_type``, ``additional_rate_limits``...) survive.
None of them raises on junk input: they return ``None`` instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

_SLOTS = (("primary", "primary_window"), ("secondary", "secondary_window"))
_RESET_KEYS = ("resets_at",)  # limit-level keys that describe one blocked episode only


def to_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too big for a float
        return None
    return number if math.isfinite(number) else None


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased; non-string names or values are skipped."""
    try:
        items = list(headers.items())
    except Exception:
        return {}
    return {k.lower(): v for k, v in items if isinstance(k, str) and isinstance(v, str)}


def _build_window(
    used: float, minutes: float | None, reset_at: float | None, after: float | None, now: float | None
) -> dict[str, float]:
    window: dict[str, float] = {"used_percent": used}
    if minutes is not None and minutes > 0:
        window["limit_window_seconds"] = minutes * 60.0
    if after is not None and after >= 0:
        window["reset_after_seconds"] = after
        if reset_at is None and now is not None:
            reset_at = now + after
    elif reset_at is not None and now is not None:
        window["reset_after_seconds"] = max(0.0, reset_at - now)
    if reset_at is not None:
        window["reset_at"] = reset_at
    return window


def _served(windows: dict[str, dict[str, float]], plan: object) -> dict[str, Any] | None:
    if not windows:
        return None
    # The response was served, so the account is allowed now; a 429 says otherwise (payload_from_429).
    payload: dict[str, Any] = {"rate_limit": {"allowed": True, "limit_reached": False, **windows}}
    if isinstance(plan, str) and plan.strip():
        payload["plan_type"] = plan.strip().lower()
    return payload


def payload_from_headers(headers: Mapping[str, str], now: float) -> dict[str, Any] | None:
    """``x-codex-{primary,secondary}-{used-percent,window-minutes,reset-at,reset-after-seconds}``
    of a served response → a payload, or ``None`` when no window is reported."""
    h = lower_headers(headers)
    windows: dict[str, dict[str, float]] = {}
    for slot, key in _SLOTS:
        used = to_number(h.get(f"x-codex-{slot}-used-percent"))
        if used is None:
            continue
        windows[key] = _build_window(
            used,
            to_number(h.get(f"x-codex-{slot}-window-minutes")),
            to_number(h.get(f"x-codex-{slot}-reset-at")),
            to_number(h.get(f"x-codex-{slot}-reset-after-seconds")),
            now,
        )
    return _served(windows, h.get("x-codex-plan-type"))


def payload_from_event(event: Mapping[str, Any], now: float | None = None) -> dict[str, Any] | None:
    """A ``codex.rate_limits`` stream event → a payload, or ``None`` for any other event, for another
    limit family (``metered_limit_name``/``limit_name`` other than ``codex``), or without windows.
    Without ``now`` the windows carry only ``reset_at``; the cache view derives the rest."""
    try:
        if not isinstance(event, Mapping) or event.get("type") != "codex.rate_limits":
            return None
        name = event.get("metered_limit_name") or event.get("limit_name")
        if name not in (None, "codex"):
            return None
        limits = event.get("rate_limits")
        limits = limits if isinstance(limits, Mapping) else {}
        windows: dict[str, dict[str, float]] = {}
        for slot, key in _SLOTS:
            raw = limits.get(slot)
            used = to_number(raw.get("used_percent")) if isinstance(raw, Mapping) else None
            if not isinstance(raw, Mapping) or used is None:
                continue
            minutes = to_number(raw.get("window_minutes"))
            if minutes is None and (seconds := to_number(raw.get("limit_window_seconds"))) is not None:
                minutes = seconds / 60.0
            after = to_number(raw.get("reset_after_seconds"))
            if after is None:
                after = to_number(raw.get("resets_in_seconds"))
            windows[key] = _build_window(used, minutes, to_number(raw.get("reset_at")), after, now)
        return _served(windows, event.get("plan_type"))
    except Exception:
        return None


def error_body(body: bytes) -> Mapping[str, Any] | None:
    """The ``error`` object of a JSON error body (or the body itself when it has ``type``/``code``)."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(data, Mapping):
        return None
    error = data.get("error")
    if isinstance(error, Mapping):
        return error
    return data if "type" in data or "code" in data else None


def error_kind(error: Mapping[str, Any] | None) -> str | None:
    if error is None:
        return None
    for key in ("type", "code"):
        value = error.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def body_reset(error: Mapping[str, Any] | None, now: float) -> float | None:
    """When a usage-limit 429 body says the limit lifts: ``resets_at``, else ``now + resets_in_seconds``."""
    if error is None:
        return None
    at = to_number(error.get("resets_at"))
    if at is not None:
        return at
    after = to_number(error.get("resets_in_seconds"))
    return None if after is None else now + max(0.0, after)


def payload_from_429(headers: Mapping[str, str], body: bytes, now: float) -> dict[str, Any] | None:
    """A 429 → a payload. A usage-limit body (``usage_limit_reached``) or an exhausted window marks
    the limit reached, with the body's reset as ``rate_limit.resets_at``; a plain rate limit only
    passes on the windows its headers report. ``None`` when the 429 says nothing about quota."""
    try:
        payload = payload_from_headers(headers, now)
        error = error_body(body)
        exhausted = payload is not None and any(
            isinstance(w, Mapping) and w.get("used_percent", 0) >= 100 for w in payload["rate_limit"].values()
        )
        if error_kind(error) != "usage_limit_reached" and not exhausted:
            return payload
        payload = payload or {"rate_limit": {}}
        limit = payload["rate_limit"]
        limit["allowed"], limit["limit_reached"] = False, True
        reset = body_reset(error, now)
        if reset is not None:
            limit["resets_at"] = reset
        plan = error.get("plan_type") if error is not None else None
        if isinstance(plan, str) and plan and "plan_type" not in payload:
            payload["plan_type"] = plan.lower()
        return payload
    except Exception:
        return None


def _span(window: object) -> float | None:
    return to_number(window.get("limit_window_seconds")) if isinstance(window, Mapping) else None


def merge_payload(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], now: float | None = None
) -> dict[str, Any]:
    """``new`` folded into ``old``: top-level fields and limit flags of ``new`` win; fields only
    ``old`` has are kept. Windows are matched by length: an old window whose length a new window
    reports (in either slot) is replaced. With ``now``, kept old windows that carry ``reset_at``
    get their ``reset_after_seconds`` re-based to ``now``."""
    merged: dict[str, Any] = dict(old) if isinstance(old, Mapping) else {}
    for key, value in new.items():
        if key != "rate_limit":
            merged[key] = value
    new_limit = new.get("rate_limit")
    if not isinstance(new_limit, Mapping):
        return merged
    old_limit = merged.get("rate_limit")
    limit: dict[str, Any] = dict(old_limit) if isinstance(old_limit, Mapping) else {}
    for key in _RESET_KEYS:
        limit.pop(key, None)
    new_spans = {_span(new_limit.get(key)) for _, key in _SLOTS} - {None}
    for _, key in _SLOTS:
        window = limit.get(key)
        if key in new_limit or not isinstance(window, Mapping):
            continue
        if _span(window) in new_spans:
            del limit[key]
        elif now is not None and (at := to_number(window.get("reset_at"))) is not None:
            limit[key] = {**window, "reset_after_seconds": max(0.0, at - now)}
    limit.update(new_limit)
    merged["rate_limit"] = limit
    return merged
