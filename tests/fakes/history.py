"""A day of usage history in a real pool store (tests only): accounts working in sessions, their
5-hour windows starting at first use and resetting five hours later, the weekly window creeping up.

Readings are written the way the quota cache writes them (:meth:`tray.store.accounts.Store.record_samples`),
one every few minutes while an account works, as the response headers of its requests would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tray.models import Account, UsageSample
from tray.store.accounts import Store

FIVE_H, WEEK = 18000.0, 604800.0


@dataclass(frozen=True)
class Session:
    """Work from ``start`` to ``end`` hours before now (``end`` 0 = still working), spending
    ``per_hour`` percent of the 5-hour window per hour."""

    start: float
    end: float
    per_hour: float


def working_history(store: Store, account: Account, now: float, sessions: Sequence[Session], *,
                    weekly_used: float = 20.0, weekly_reset_in: float = 3 * 86400.0,
                    every: float = 300.0, hours: float = 30.0) -> list[UsageSample]:
    """Simulate ``hours`` of work minute by minute and record the readings; returns them."""
    used = weekly = 0.0
    reset_at: float | None = None
    weekly = max(0.0, weekly_used - sum((s.start - s.end) * s.per_hour / 8 for s in sessions))
    samples: list[UsageSample] = []
    last_reading = -1e18
    t = now - hours * 3600.0
    while t <= now:
        ago = (now - t) / 3600.0
        working = any(s.end <= ago < s.start for s in sessions)
        if reset_at is not None and t >= reset_at:
            used, reset_at = 0.0, None
        if working:
            rate = next(s.per_hour for s in sessions if s.end <= ago < s.start)
            if reset_at is None:
                reset_at = t + FIVE_H  # the window starts with the first request after a reset
            used = min(100.0, used + rate / 60.0)
            weekly = min(100.0, weekly + rate / 8 / 60.0)
            if t - last_reading >= every or now - t < 60.0:
                last_reading = t
                weekly_reset = now + weekly_reset_in
                samples += [UsageSample(account.id, FIVE_H, round(used, 1), reset_at, "headers", t),
                            UsageSample(account.id, WEEK, round(weekly, 1), weekly_reset, "headers", t)]
        t += 60.0
    for sample in samples:
        store.record_samples([sample])
    return samples
