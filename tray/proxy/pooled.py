"""The answers the proxy gives when no account could serve a request: one pooled 429 naming the
soonest reset (with ``Retry-After``), 502 when upstream could not be reached, 503 when no account is
usable at all. Messages never hold a secret."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.responses import Response

from tray.proxy.shaping import error_body
from tray.quota import usage_view
from tray.routing import soonest_reset as soonest_available
from tray.store import Store

RATE_LIMIT_KINDS = frozenset({"429", "usage limit", "rate limited"})
LOCAL_KINDS = frozenset({"pool busy"})  # our own pool file, not the account
FINAL_KINDS = frozenset({"connection limit", "forward proxy"})  # no other candidate can do better: stop
LIMIT_RETRY_AFTER = 1  # seconds; a connection frees up when any answer in flight ends
UNREACHABLE_KINDS = frozenset({"transport error", "timeout", "5xx", "html 403", "overloaded", "stream ended",
                               "oversized answer", "forward proxy"})


@dataclass(frozen=True)
class Failure:
    """Why one candidate did not serve the request."""

    label: str  # "429", "usage limit", "transport error", "5xx", "html 403", "401", "needs login"...
    message: str
    status: int = 0
    until: float | None = None  # cooldown end, when one was set
    account_id: int | None = None  # the account that cooldown is for

    @property
    def rate_limited(self) -> bool:
        return self.label in RATE_LIMIT_KINDS

    @property
    def unreachable(self) -> bool:
        return self.label in UNREACHABLE_KINDS

    @property
    def local(self) -> bool:
        return self.label in LOCAL_KINDS

    @property
    def final(self) -> bool:
        """True when trying the next candidate is pointless (the limit is the proxy's own)."""
        return self.label in FINAL_KINDS


def _cooling(store: Store, now: float, failures: Iterable[Failure]) -> dict[int, float]:
    """Cooldown ends by account: the stored ones, and those this request just set (the background
    batch may not have written them yet)."""
    cooling = {i: c.until for i, c in store.cooldowns(now).items()}
    for f in failures:
        if f.account_id is not None and f.until is not None and f.until > now:
            cooling[f.account_id] = max(f.until, cooling.get(f.account_id, f.until))
    return cooling


def _earliest(store: Store, now: float, failures: Iterable[Failure] = ()) -> float | None:
    enabled = [a.id for a in store.accounts(include_inactive=False)]
    views = {i: usage_view(store.usage(i), now, account_id=i) for i in enabled}
    return soonest_available(enabled, _cooling(store, now, failures), views, now)


def soonest_reset(store: Store, now: float, failures: Iterable[Failure] = ()) -> float | None:
    """The earliest moment an enabled account is expected to serve again (cooldown end, including
    those set by ``failures``, or blocking window reset in cached usage); ``None`` when no reset is
    known."""
    soonest = _earliest(store, now, failures)
    return soonest if soonest is not None and soonest > now else None


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, separators=(",", ":")), status_code=status, media_type="application/json",
        headers=headers,
    )


def when(at: float) -> str:
    """``2027-01-15 15:40 UTC``: a reset in the client's words (to the minute; the answer's
    ``Retry-After`` and ``resets_in_seconds`` carry the exact wait)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(math.ceil(at / 60) * 60))


def pooled_error(store: Store, now: float, failures: Iterable[Failure]) -> tuple[Response, str]:
    """The client's answer when no candidate served, and the decision reason to record."""
    failures = list(failures)
    accounts = store.accounts(include_inactive=True)
    if not accounts:
        message = "codex-pool has no accounts yet. Add one with 'codex-pool login' or from the tray."
        return _json(503, error_body(message, "no_accounts")), "no accounts in the pool"
    if failures and failures[-1].label == "connection limit":
        message = ("codex-pool has too many answers from the Codex backend in flight (its own "
                   "connection limit); try again in a moment.")
        retry = {"Retry-After": str(LIMIT_RETRY_AFTER)}
        return _json(503, error_body(message, "connection_limit"), retry), "local connection limit"
    if failures and all(f.local for f in failures):
        # Retrying shortly works once the other process lets go of the pool file.
        message = f"codex-pool could not use its pool file: {failures[-1].message}"
        return _json(503, error_body(message, "pool_busy"), {"Retry-After": "2"}), "pool file busy"
    if failures and all(f.unreachable for f in failures):
        last = failures[-1]
        message = f"codex-pool could not reach the Codex backend: {last.message}"
        return _json(502, error_body(message, "upstream_unreachable")), "upstream unreachable"
    cooling = _cooling(store, now, failures)
    if any(f.rate_limited for f in failures) or cooling:
        # A cooldown that ran out while this request was failing over still gets a Retry-After.
        earliest = _earliest(store, now, failures)
        soonest = None if earliest is None else max(earliest, now)
        headers: dict[str, str] = {}
        extra: dict[str, object] = {}
        if soonest is not None:
            wait = max(1, math.ceil(soonest - now))
            headers["Retry-After"] = str(wait)
            extra = {"resets_at": math.ceil(soonest), "resets_in_seconds": wait}
            message = f"codex-pool: every account is at its usage limit; the first resets at {when(soonest)}."
        else:
            message = "codex-pool: every account is at its usage limit."
        body = error_body(message, "pool_exhausted", "usage_limit_reached", **extra)
        return _json(429, body, headers), "pool exhausted"
    message = "codex-pool: no account can serve right now"
    reasons = sorted({f"{f.label}: {f.message}" for f in failures})
    message += (": " + "; ".join(reasons)) if reasons else " (all are disabled or need a new login)."
    return _json(503, error_body(message, "no_usable_account")), "no usable account"
