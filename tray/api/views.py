"""What the management API says: plain functions turning models into JSON-ready dicts.

No I/O here. Every function takes the data and the current time, so tests can feed fixed values.
Nothing returned here ever holds a token: views are built field by field from the models, never
with ``asdict`` (an :class:`~tray.models.Account` carries its :class:`~tray.models.TokenSet`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from tray.health import AccountView, PoolHealth, unusable_until
from tray.models import Account, AccountState, Cooldown, Decision, QuotaEntry, Usage, Window
from tray.quota.usage import anchor, by_length, parse_usage, window_name

SHORT_WINDOW_MAX_S = 24 * 3600  # windows up to a day long are the "5h"-style ones; longer are weekly
LOW_QUOTA_PERCENT = 90.0  # used % from which an account counts as running low


def _window_view(window: Window, now: float) -> dict[str, Any]:
    reset_at = window.reset_at
    passed = reset_at is not None and reset_at <= now
    return {
        "label": window_name(window.window_seconds),
        "kind": "short" if (window.window_seconds or 0) <= SHORT_WINDOW_MAX_S else "long",
        "window_seconds": window.window_seconds,
        # A window whose reset time has passed starts over, but how much of the new one is used is
        # not known until the next usage fetch: "resetting", never an invented 0 %.
        "used_percent": None if passed else window.used_percent,
        "reset_at": None if passed else reset_at,
        "resetting": passed,
    }


def _usage(entry: QuotaEntry | None) -> Usage | None:
    usage = parse_usage(entry.raw) if entry is not None else None
    return None if entry is None or usage is None else anchor(usage, entry.updated_at)


def quota_view(entry: QuotaEntry | None, now: float) -> dict[str, Any]:
    """Windows shortest first, with used % and absolute reset time, and the age of the data."""
    usage = _usage(entry)
    if entry is None or usage is None:
        return {"known": False, "windows": [], "blocked": False, "age_seconds": None}
    blocked_until = usage.blocked_until
    blocked = usage.blocked and (blocked_until is None or blocked_until > now)
    return {
        "known": True,
        "windows": [_window_view(w, now) for _, w in by_length(usage)],
        "blocked": blocked,
        "age_seconds": max(0.0, now - entry.updated_at),
    }


def account_status(
    account: Account, cooldown: Cooldown | None, quota: Mapping[str, Any], now: float
) -> tuple[str, str | None]:
    """The state the UI shows and why: disabled, needs_login, exhausted (a window at its limit, or
    blocked), cooling (held back after an error), low or ready. The reason is a lower-case phrase
    the window completes with the time in ``until`` ("usage limit reached, resets 15:40")."""
    if account.state is AccountState.DISABLED:
        return "disabled", account.state_reason or "Turned off by you"
    if account.state is AccountState.NEEDS_LOGIN:
        return "needs_login", account.state_reason or "Sign in again"
    used = [w["used_percent"] for w in quota.get("windows", []) if w["used_percent"] is not None]
    if quota.get("blocked") or (used and max(used) >= 100):
        return "exhausted", "usage limit reached"
    if cooldown is not None and cooldown.until > now:
        if cooldown.status == 429:
            return "cooling", "rate limited"
        return "cooling", f"resting after an upstream error ({cooldown.reason})"
    if used and max(used) >= LOW_QUOTA_PERCENT:
        return "low", f"{max(used):.0f}% of a window used"
    return "ready", None


def account_view(
    account: Account, cooldown: Cooldown | None, entry: QuotaEntry | None, now: float
) -> dict[str, Any]:
    quota = quota_view(entry, now)
    status, reason = account_status(account, cooldown, quota, now)
    cooling_until = cooldown.until if cooldown is not None and cooldown.until > now else None
    until = None
    if status in ("exhausted", "cooling"):  # when it serves again, as the tray says it (tray.health)
        at = unusable_until(AccountView(account, _usage(entry), cooldown), now)
        until = at if at is not None and math.isfinite(at) and at > now else None
    return {
        "id": account.id,
        "name": account.name,
        "label": account.label,
        "email": account.email,
        "plan": account.plan,
        "role": account.role,
        "primary": account.primary,
        "priority": account.priority,
        "enabled": account.state is not AccountState.DISABLED,
        "state": account.state.value,
        "status": status,
        "reason": reason,
        "until": until,  # exhausted or cooling: when it can serve again (None: not known)
        "cooldown_until": cooling_until,
        "quota": quota,
        "token_expires_at": account.tokens.expires_at,
        "created_at": account.created_at,
    }


def health_view(pool: PoolHealth) -> dict[str, Any]:
    """The pool's health for the window, as :func:`tray.health.pool_health` says it: ``state``
    (``healthy``, ``degraded``, ``exhausted``, ``empty`` or ``config``), the ``words`` the tray menu,
    tooltip and ``status`` show too, how many accounts can take requests, and the soonest reset
    while none can. ``message`` is the longer hover text."""
    if pool.status == "empty":
        message = "No accounts yet: add one to start."
    elif pool.status == "exhausted":
        message = "No account can take requests right now."
    elif pool.usable < pool.total:
        message = f"{pool.usable} of {pool.total} accounts ready."
    else:
        message = f"All {pool.total} accounts ready."
    return {
        "state": pool.status,
        "message": message,
        "words": pool.words,
        "usable": pool.usable,
        "total": pool.total,
        "soonest_reset": pool.soonest_reset,
    }


def revision(views: Iterable[Mapping[str, Any]], *extra: object) -> str:
    """A short stamp of what the window shows: it changes when an account, its state or its quota
    changes (here or in another process), not as time passes, so the window redraws only then."""
    steady = [{k: v for k, v in a.items() if k != "quota"} | {"quota": {
        k: v for k, v in a["quota"].items() if k != "age_seconds"}} for a in views]
    text = json.dumps([steady, [repr(e) for e in extra]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decision_view(decision: Decision) -> dict[str, Any]:
    return {
        "at": decision.at,
        "account_id": decision.account_id,
        "account": decision.account_name,
        "reason": decision.reason,
        "route": decision.route,
        "status": decision.status,
        "latency_ms": decision.latency_ms,
        "fast_note": decision.fast_note,
        "cache_age": decision.cache_age,
        "scores": [
            {"account_id": s.account_id, "name": s.name, "score": s.score} for s in decision.scores
        ],
    }


def jsonable(value: Any) -> Any:
    """Config values as JSON: enums by value, tuples and sets as lists, mappings as dicts."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return jsonable(value.value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    return value
