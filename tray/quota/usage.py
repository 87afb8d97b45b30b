"""Quota signals: usage payloads, cache views, and live signals turned into payloads.

Pure functions; ``now`` is always a parameter. A *payload* is a ``wham/usage``-shaped dict (what the
store keeps as raw JSON); :func:`parse_usage` reads one into a :class:`~tray.models.Usage`. Live
signals (``x-codex-*`` response headers, ``codex.rate_limits`` stream events, 429 bodies) become
payloads too, and :func:`merge_payload` folds them into the cached one. Windows are classified by
their length (``window_seconds``); the slot names ``primary``/``secondary`` are only labels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from tray.models import QuotaEntry, Usage, UsageSample, Window
from tray.quota.signals import merge_payload as merge_payload  # re-exported: quota is the public face
from tray.quota.signals import payload_from_429 as payload_from_429
from tray.quota.signals import payload_from_event as payload_from_event
from tray.quota.signals import payload_from_headers as payload_from_headers

FRESH_SECONDS = 60.0  # a cached entry younger than this is used without a fetch
STALE_SECONDS = 3600.0  # older than fresh but younger than this: used while it is re-warmed
REFETCH_INTERVAL = 60.0  # at most one "just reset" refetch per account per interval (no refetch loop)
REVALIDATE_AGE = 180.0  # the poller refetches entries older than this ...
ACTIVE_SECONDS = 300.0  # ... for accounts that served a request this recently,
IDLE_REVALIDATE_AGE = 600.0  # and every other account in routing's entries older than this
DORMANT_TOLERANCE = 0.001  # a window counts as untouched within 0.1 % (at least 1 s) of its length

Freshness = Literal["fresh", "stale", "missing"]


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too big for a float
        return None
    return number if math.isfinite(number) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _window(raw: object) -> Window | None:
    if not isinstance(raw, Mapping):
        return None
    span = _num(raw.get("limit_window_seconds"))
    after = _num(raw.get("reset_after_seconds"))
    window = Window(
        used_percent=_num(raw.get("used_percent")),
        window_seconds=span if span is not None and span > 0 else None,
        reset_after_seconds=after if after is not None and after >= 0 else None,
        reset_at=_num(raw.get("reset_at")),
    )
    return None if window == Window(None, None, None, None) else window


def _usage(payload: Mapping[str, Any]) -> Usage:
    limit = payload.get("rate_limit")
    limit = limit if isinstance(limit, Mapping) else {}
    allowed, reached = limit.get("allowed"), limit.get("limit_reached")
    return Usage(
        plan_type=_str(payload.get("plan_type")),
        allowed=allowed if isinstance(allowed, bool) else None,
        limit_reached=reached if isinstance(reached, bool) else None,
        primary=_window(limit.get("primary_window")),
        secondary=_window(limit.get("secondary_window")),
        account_id=_str(payload.get("account_id")),
        blocked_until=_num(limit.get("resets_at")),
    )


def _load(raw: str | bytes | bytearray) -> object:
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None


@lru_cache(maxsize=4096)
def _parse_raw(raw: str) -> Usage | None:
    return parse_usage(_load(raw))


def parse_usage(payload: object) -> Usage | None:
    """Read a usage payload (a mapping, or its JSON text). Never raises: junk gives ``None``, and
    fields of the wrong type are left out (``None``) while the rest is kept."""
    if isinstance(payload, str | bytes | bytearray):
        payload = _load(payload)
    if not isinstance(payload, Mapping):
        return None
    try:
        return _usage(payload)
    except Exception:  # a hostile Mapping subclass; parsing must never take a request down
        return None


# --- windows -------------------------------------------------------------------------------------


def windows(usage: Usage | None) -> tuple[tuple[str, Window], ...]:
    """The present windows with their labels (``rate.primary``, ``rate.secondary``), slot order."""
    if usage is None:
        return ()
    found = (("rate.primary", usage.primary), ("rate.secondary", usage.secondary))
    return tuple((label, w) for label, w in found if w is not None)


def by_length(usage: Usage | None) -> tuple[tuple[str, Window], ...]:
    """The present windows, shortest first; windows of unknown length come last."""
    return tuple(sorted(windows(usage), key=lambda item: item[1].window_seconds or math.inf))


def window_length(seconds: float | None) -> str:
    """``5h``, ``7d``, ``2.5h``, ``30m``, ``45s``: a window's length (surfaces show
    :func:`window_name`)."""
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return "?"
    for size, unit in ((86400.0, "d"), (3600.0, "h"), (60.0, "m")):
        if seconds >= size:
            return f"{seconds / size:.1f}".removesuffix(".0") + unit
    return f"{seconds:.0f}s"


def window_name(seconds: float | None) -> str:
    """What every surface calls a window (tray, window, ``status``, notices): ``weekly`` for a
    week-long one (6 to 8 days), else its length (``5h``)."""
    if seconds is not None and 6 * 86400 <= seconds <= 8 * 86400:
        return "weekly"
    return window_length(seconds)


def is_complete(window: Window) -> bool:
    return (
        window.used_percent is not None
        and window.reset_after_seconds is not None
        and window.window_seconds is not None
    )


def is_dormant(window: Window) -> bool:
    """Untouched: nothing used and the timer not started (reset equals length, within rounding)."""
    if not is_complete(window):
        return False
    span, after = window.window_seconds or 0.0, window.reset_after_seconds or 0.0
    used = max(0.0, min(100.0, window.used_percent or 0.0))
    return used <= 0.0 and after > 0 and abs(span - after) <= max(1.0, DORMANT_TOLERANCE * span)


def _anchor_window(w: Window | None, observed_at: float) -> Window | None:
    if w is None:
        return None
    if w.reset_after_seconds is None and w.reset_at is not None:
        return Window(w.used_percent, w.window_seconds, max(0.0, w.reset_at - observed_at), w.reset_at)
    if w.reset_at is None and w.reset_after_seconds is not None:
        return Window(
            w.used_percent, w.window_seconds, w.reset_after_seconds, observed_at + w.reset_after_seconds
        )
    return w


def anchor(usage: Usage, observed_at: float) -> Usage:
    """Fill each window's missing ``reset_after_seconds``/``reset_at`` from the other one, taking
    ``observed_at`` as the time the payload describes."""
    primary = _anchor_window(usage.primary, observed_at)
    secondary = _anchor_window(usage.secondary, observed_at)
    if primary is usage.primary and secondary is usage.secondary:
        return usage
    return Usage(
        usage.plan_type,
        usage.allowed,
        usage.limit_reached,
        primary,
        secondary,
        usage.account_id,
        usage.blocked_until,
    )


# --- cache views ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageView:
    """What routing knows about one account's quota at ``now``. ``usage`` is ``None`` unless the
    entry is usable (fresh or stale). ``has_entry`` tells a cold cache from an expired entry;
    ``just_reset`` flags a window reporting ``reset_after_seconds == 0``."""

    account_id: int
    usage: Usage | None
    updated_at: float | None
    freshness: Freshness
    has_entry: bool = False
    just_reset: bool = False
    why: str = ""  # for a missing view: "", "corrupt", "expired" or "reset passed"

    def age(self, now: float) -> float:
        """Seconds since the entry was observed (0 when there is none or the clock went back)."""
        return 0.0 if self.updated_at is None else max(0.0, now - self.updated_at)

    @property
    def usable(self) -> bool:
        return self.freshness != "missing"

    @property
    def expired(self) -> bool:
        """An entry exists but is unusable: refetch before ranking (briefly; see QuotaService.prepare)."""
        return self.has_entry and self.freshness == "missing"


def missing_view(account_id: int) -> UsageView:
    return UsageView(account_id, None, None, "missing")


def reset_deadline(usage: Usage, observed_at: float) -> float | None:
    """The earliest moment a scored window resets, or a blocked limit lifts (429 body reset).
    Dormant windows and windows reporting 0 s ("just reset": rate-limited separately) never force expiry."""
    deadlines = [
        observed_at + w.reset_after_seconds
        for _, w in windows(usage)
        if w.used_percent is not None
        and w.reset_after_seconds is not None
        and w.reset_after_seconds > 0
        and not is_dormant(w)
    ]
    if usage.blocked and usage.blocked_until is not None:
        deadlines.append(usage.blocked_until)
    return min(deadlines) if deadlines else None


@lru_cache(maxsize=4096)
def _prepared(raw: str, at: float) -> tuple[Usage | None, float | None, bool]:
    """Parsed and anchored usage, its reset deadline, and whether a window just reset. Cached: an
    entry's text and time change at most once per fetch, while every request reads it."""
    parsed = _parse_raw(raw)
    if parsed is None:
        return None, None, False
    usage = anchor(parsed, at)
    just_reset = any(w.reset_after_seconds == 0 and w.used_percent is not None for _, w in windows(usage))
    return usage, reset_deadline(usage, at), just_reset


def usage_view(entry: QuotaEntry | None, now: float, *, account_id: int = 0) -> UsageView:
    """Classify a cache entry: fresh (≤ 60 s), stale (≤ 1 h), else missing; an entry whose scored
    window's reset deadline has passed is missing too. ``account_id`` names the account when
    ``entry`` is ``None``."""
    if entry is None:
        return missing_view(account_id)
    at = entry.updated_at
    usage, deadline, just_reset = _prepared(entry.raw, at)
    if usage is None:
        return UsageView(entry.account_id, None, at, "missing", has_entry=True, why="corrupt")
    age = max(0.0, now - at)
    if age > STALE_SECONDS:
        return UsageView(entry.account_id, None, at, "missing", has_entry=True, why="expired")
    if deadline is not None and now >= deadline:
        return UsageView(entry.account_id, None, at, "missing", has_entry=True, why="reset passed")
    freshness: Freshness = "fresh" if age <= FRESH_SECONDS else "stale"
    return UsageView(entry.account_id, usage, at, freshness, has_entry=True, just_reset=just_reset)


def shown_usage(entry: QuotaEntry | None) -> Usage | None:
    """What the surfaces (menu, window, ``status``) show of a cache entry: its usage with each
    window's reset as a time, whatever its age, windows whose reset passed included (they say
    "resetting"); ``None`` when there is no readable entry. Routing uses :func:`usage_view`."""
    usage = parse_usage(entry.raw) if entry is not None else None
    return None if entry is None or usage is None else anchor(usage, entry.updated_at)


def wants_refetch(view: UsageView, last_refetch_at: float | None, now: float) -> bool:
    """Whether to fetch this account's usage now: the view is not fresh or a window just reset,
    and no refetch for it started in the last :data:`REFETCH_INTERVAL` seconds."""
    if view.freshness == "fresh" and not view.just_reset:
        return False
    return last_refetch_at is None or not 0 <= now - last_refetch_at < REFETCH_INTERVAL


def should_revalidate(view: UsageView, last_active_at: float | None, now: float) -> bool:
    """For the 30 s poller: the entry is absent, or over 3 min old for an account that served a
    request in the last 5 min, or over 10 min old for any other (idle accounts at a slow pace)."""
    if view.updated_at is None:
        return True
    active = last_active_at is not None and 0 <= now - last_active_at <= ACTIVE_SECONDS
    return now - view.updated_at > (REVALIDATE_AGE if active else IDLE_REVALIDATE_AGE)


def samples_from_payload(
    account_id: int, payload: Mapping[str, Any] | str | None, at: float, source: str
) -> list[UsageSample]:
    """The samples a usage-shaped payload gives: one per window with a known length and used %.
    A window without a length cannot be named (5h, weekly...) and is left out."""
    usage = parse_usage(payload)
    if usage is None:
        return []
    found: list[UsageSample] = []
    for _, window in windows(anchor(usage, at)):
        if window.window_seconds is None or window.used_percent is None:
            continue
        used = max(0.0, min(100.0, window.used_percent))
        found.append(UsageSample(account_id, window.window_seconds, used, window.reset_at, source, at))
    return found
