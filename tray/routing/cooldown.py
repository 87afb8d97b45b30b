"""How long an account rests after upstream turned a request away.

After a 429 the most precise signal wins, whichever header or body carries it: the error body's
``resets_at`` / ``resets_in_seconds``, the ``x-codex-*`` reset of the exhausted window, ``Retry-After``
(seconds or an HTTP date), the blocking window in cached usage, else 60 s. Transport errors, 5xx and
HTML 403s get a short cooldown instead; none of these ever disables an account. Pure; never raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import overload

from tray.models import Cooldown, Usage
from tray.quota.signals import error_body, error_kind, lower_headers, payload_from_headers, to_number
from tray.quota.usage import windows

DEFAULT_COOLDOWN = 60.0  # a 429 that says nothing about its reset
MIN_COOLDOWN = 1.0  # a reset already due (Retry-After: 0, a past resets_at) still rests this long
FAILURE_COOLDOWN = 15.0  # transport error, timeout, 5xx, Cloudflare HTML 403
MAX_COOLDOWN = 32 * 86400.0  # longer than any quota window: the signal is garbage, try the next one
_FAILURES = {"forbidden": 30.0}  # an HTML challenge tends to last longer than a blip


def _plausible(until: float | None, now: float) -> float | None:
    if until is None or not math.isfinite(until) or until - now > MAX_COOLDOWN:
        return None
    return max(until, now + MIN_COOLDOWN)


def _from_body(body: bytes, now: float) -> float | None:
    error = error_body(body)
    if error is None:
        return None
    at = _plausible(to_number(error.get("resets_at")), now)
    if at is not None:
        return at
    after = to_number(error.get("resets_in_seconds"))
    return _plausible(now + after, now) if after is not None else None


def _from_headers(headers: Mapping[str, str], now: float) -> float | None:
    payload = payload_from_headers(headers, now)
    if payload is None:
        return None
    resets = [
        w.get("reset_at")
        for w in payload["rate_limit"].values()
        if isinstance(w, dict) and w.get("used_percent", 0) >= 100
    ]
    known = [r for r in resets if r is not None]
    return _plausible(max(known), now) if known else None


def _from_retry_after(value: str | None, now: float) -> float | None:
    if value is None or not value.strip():
        return None
    seconds = to_number(value)
    if seconds is not None:
        return _plausible(now + max(seconds, 0.0), now)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT even when the zone is missing
        return None
    return _plausible(when.timestamp(), now)


def _from_usage(usage: Usage | None, now: float) -> float | None:
    """The blocking window's reset in cached usage (windows a cache view anchored carry ``reset_at``)."""
    if usage is None:
        return None
    if usage.blocked and usage.blocked_until is not None and usage.blocked_until > now:
        return _plausible(usage.blocked_until, now)
    present = windows(usage)
    if usage.blocked:
        ranked = sorted(present, key=lambda item: item[1].used_percent or -1.0, reverse=True)
        blocking = [w for _, w in ranked[:1]]
    else:
        blocking = [w for _, w in present if (w.used_percent or 0.0) >= 100]
    resets = [
        w.reset_at if w.reset_at is not None else now + (w.reset_after_seconds or 0.0)
        for w in blocking
        if w.reset_at is not None or w.reset_after_seconds is not None
    ]
    until = max(resets) if resets else None
    return _plausible(until, now) if until is not None and until > now else None


def after_429(headers: Mapping[str, str], body: bytes, usage: Usage | None, now: float) -> tuple[float, str]:
    """``(until, source)`` for an account that answered 429; ``source`` is ``body``, ``headers``,
    ``retry-after``, ``usage`` or ``default``."""
    found: tuple[tuple[float | None, str], ...]
    try:
        h = lower_headers(headers)
        found = (
            (_from_body(body, now), "body"),
            (_from_headers(h, now), "headers"),
            (_from_retry_after(h.get("retry-after"), now), "retry-after"),
            (_from_usage(usage, now), "usage"),
        )
    except Exception:  # junk input must never take the request down
        found = ()
    for until, source in found:
        if until is not None:
            return until, source
    return now + DEFAULT_COOLDOWN, "default"


def is_entitlement_error(body: bytes) -> bool:
    """``usage_not_included``: the plan lacks the feature. Not a rate limit: returned to the client,
    and the account is not cooled down."""
    error = error_body(body)
    if error is not None:
        return error_kind(error) == "usage_not_included"
    try:
        return b"usage_not_included" in body
    except TypeError:
        return False


@overload
def after_failure(now: float, /) -> float: ...
@overload
def after_failure(kind: str, now: float, /) -> float: ...
def after_failure(kind: str | float, now: float | None = None, /) -> float:
    """When an account that failed without a verdict on its quota (transport error, timeout, 5xx,
    HTML 403: ``kind`` ``forbidden`` rests 30 s) may be tried again; 15 s otherwise."""
    if now is None:
        return float(kind) + FAILURE_COOLDOWN
    return now + _FAILURES.get(str(kind), FAILURE_COOLDOWN)


def for_429(
    account_id: int, headers: Mapping[str, str], body: bytes, usage: Usage | None, now: float
) -> Cooldown:
    """The cooldown an account gets after upstream answered 429 (see :func:`after_429`)."""
    until, source = after_429(headers, body, usage, now)
    return Cooldown(account_id, until, 429, "rate limited", source)


def for_failure(account_id: int, kind: str, status: int, now: float) -> Cooldown:
    """The cooldown after a failure that says nothing about quota (``kind``: ``timeout``,
    ``transport``, ``5xx``, ``html 403``, an early stream failure...)."""
    until = after_failure("forbidden" if kind == "html 403" else kind, now)
    return Cooldown(account_id, until, status, kind, "default")
