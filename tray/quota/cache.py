"""The quota cache as the proxy sees it: usage views of the shared entries, live signals merged
into them, and what an updated entry tells (the account's plan, a :class:`QuotaLow` notice). Each
signal and fetch is also kept in the usage history (:mod:`tray.store.history`).

:class:`QuotaCache` is the base of :class:`tray.quota.service.QuotaService`, which adds fetching and
polling. Writes (``observe*``) block on the pool file: callers run them in worker threads or the
pipeline's background batch, never on the event loop; views read the loop's own connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from tray.errors import PoolError
from tray.models import Account, Clock, Config, EventSink, QuotaLow, Usage
from tray.quota import signals
from tray.quota import usage as quota
from tray.quota.usage import UsageView
from tray.store import Store

log = logging.getLogger(__name__)

LOW_PERCENT_LEFT = 10.0  # QuotaLow fires when a window drops below this much left


class QuotaCache:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        events: EventSink | None = None,
        low_percent: float = LOW_PERCENT_LEFT,
        reads: Store | None = None,
    ) -> None:
        self.store = store  # written from worker threads
        self.reads = reads or store  # read on the event loop (see Pipeline.reads)
        self.clock = clock
        self.events = events
        self.low_percent = low_percent  # quota-low-percent; follows the config (see configure)
        self._low: set[int] = set()

    def configure(self, config: Config) -> None:
        """Take the settings of a (re)loaded config: the quota-low threshold."""
        self.low_percent = config.quota_low_percent

    def view(self, account_id: int, now: float) -> UsageView:
        return quota.usage_view(self.reads.usage(account_id), now, account_id=account_id)

    # ---- live signals ------------------------------------------------------------------------

    def observe(self, account: Account, payload: Mapping[str, Any] | None, source: str = "signal") -> None:
        """Merge a usage-shaped payload from a live signal into the cached entry (read, merge and
        write in one transaction, so a merge by another process at the same time is kept too);
        ``source`` names the signal in the usage history."""
        if not payload:
            return
        now = self.clock()
        merged: dict[str, Any] = {}

        def merge(raw: str | None) -> str:
            old: Any = None
            if raw is not None:
                with contextlib.suppress(ValueError):
                    old = json.loads(raw)
            merged.update(signals.merge_payload(old if isinstance(old, dict) else None, payload, now))
            return json.dumps(merged, separators=(",", ":"))

        self.store.merge_usage(account.id, merge, now)
        self._record(account, payload, now, source)
        self._after_update(account, merged)

    def observe_headers(self, account: Account, headers: Mapping[str, str]) -> None:
        """A served response's ``x-codex-*`` headers."""
        self.observe(account, signals.payload_from_headers(headers, self.clock()), "headers")

    def observe_event(self, account: Account, data: Mapping[str, Any]) -> None:
        """A ``codex.rate_limits`` stream event."""
        self.observe(account, signals.payload_from_event(data, self.clock()), "event")

    def observe_429(self, account: Account, headers: Mapping[str, str], body: bytes) -> None:
        """A 429's headers and body (a usage limit marks the limit reached until its reset)."""
        self.observe(account, signals.payload_from_429(headers, body, self.clock()), "429")

    # ---- what an entry tells -----------------------------------------------------------------

    def _store_fetched(self, account: Account, raw: str, payload: Mapping[str, Any], at: float) -> None:
        self.store.put_usage(account.id, raw, at)
        self._record(account, payload, at, "usage")
        self._after_update(account, payload)

    def _record(self, account: Account, payload: Mapping[str, Any], at: float, source: str) -> None:
        # The history is a by-product: a failed sample must not undo the quota it came with.
        try:
            self.store.record_samples(quota.samples_from_payload(account.id, payload, at, source))
        except PoolError as exc:
            log.info("usage sample for %s not kept: %s", account.name, exc)

    def _after_update(self, account: Account, payload: Mapping[str, Any]) -> None:
        usage = quota.parse_usage(payload)
        if usage is None:
            return
        plan = usage.plan_type
        if plan and plan.lower() != (account.plan or "").lower():
            with contextlib.suppress(PoolError):
                self.store.update_meta(account.id, plan=plan.lower())
        self._check_low(account, usage)

    def _check_low(self, account: Account, usage: Usage) -> None:
        used = [w.used_percent for _, w in quota.windows(usage) if w.used_percent is not None]
        left = 100.0 - max(used) if used else None
        if left is None:
            return
        threshold = self.low_percent
        if left < threshold and account.id not in self._low:
            self._low.add(account.id)
            if self.events is not None:
                self.events(QuotaLow(account.id, account.name, max(0.0, left)))
        elif left >= threshold:
            self._low.discard(account.id)
