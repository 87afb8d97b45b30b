"""Keeps the shared quota cache warm and current (runs on the proxy's event loop; its store writes
run in worker threads, since another process may hold the pool file's write lock).

- :meth:`QuotaService.prepare` gives routing a usage view per candidate: entries whose scored
  window's reset deadline passed are refetched before ranking; stale or cold entries are used (or
  ranked neutral) while a background fetch warms them; a window reporting ``reset_after_seconds = 0``
  triggers at most one refetch per account per minute.
- One usage fetch per account across processes: an in-process task map, then the store lease
  ``usage:<id>``; a process that loses the lease waits for the winner's row and re-reads it.
- The poller revalidates, every 30 s, entries over 3 min old of accounts that served a request in
  the last 5 min.
- Usage is fetched with a fresh access token: the injected refresher renews a due or expired one
  first; a 401 gets one forced refresh and one retry, and a 401 that survives that counts as "no
  data" and quiets that account's fetches for :data:`UNAUTHORIZED_QUIET` seconds (no 401 loop).
- Live signals (``x-codex-*`` headers, ``codex.rate_limits`` events, 429 bodies) are merged into the
  cached payload for free.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import httpx

from tray import quota, signals
from tray.errors import PoolError
from tray.models import Account, Clock, EventSink, QuotaLow
from tray.quota import UsageView
from tray.store import Store
from tray.usage import UsageFetchError, fetch_usage

log = logging.getLogger(__name__)

LEASE_TTL = 25.0  # seconds; longer than the usage call's own time limit (15 s)
WAIT_FOR_OTHER = 5.0  # how long to wait for another process's fetch before trying the lease again
WAIT_STEP = 0.25
POLL_INTERVAL = 30.0
LOW_PERCENT_LEFT = 10.0  # QuotaLow fires when a window drops below this much left
UNAUTHORIZED_QUIET = 300.0  # seconds without usage fetches for an account upstream keeps refusing


class TokenSource(Protocol):
    """The part of :class:`tray.refresh.Refresher` the quota service uses."""

    async def ensure_fresh(self, account: Account, *, force: bool = False) -> Account: ...


class QuotaService:
    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        upstream_url: Callable[[], str],
        *,
        clock: Clock,
        events: EventSink | None = None,
        low_percent: Callable[[], float] = lambda: LOW_PERCENT_LEFT,
        lease_ttl: float = LEASE_TTL,
        wait_for_other: float = WAIT_FOR_OTHER,
        wait_step: float = WAIT_STEP,
        poll_interval: float = POLL_INTERVAL,
        reads: Store | None = None,
        refresher: TokenSource | None = None,
    ) -> None:
        self.store = store  # written from worker threads
        self.reads = reads or store  # read on the event loop (see Pipeline.reads)
        self.http = http
        self.upstream_url = upstream_url
        self.clock = clock
        self.events = events
        self.low_percent = low_percent
        self.lease_ttl = lease_ttl
        self.wait_for_other = wait_for_other
        self.wait_step = wait_step
        self.poll_interval = poll_interval
        self.refresher = refresher
        self.owner = f"quota-{uuid.uuid4().hex}"
        self.fetches = 0  # usage calls this process made (tests and the status page read it)
        self._inflight: dict[int, asyncio.Task[UsageView]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._last_refetch: dict[int, float] = {}
        self._active: dict[int, float] = {}  # account id -> last request time (poller)
        self._low: set[int] = set()
        self._unauthorized: dict[int, float] = {}  # account id -> when upstream last refused a fresh token
        self._poller: asyncio.Task[None] | None = None

    # ---- views -------------------------------------------------------------------------------

    def view(self, account_id: int, now: float) -> UsageView:
        return quota.usage_view(self.reads.usage(account_id), now, account_id=account_id)

    async def prepare(self, accounts: list[Account], now: float) -> dict[int, UsageView]:
        """Views for ``accounts``: expired entries refetched first; stale/cold ones warmed."""
        views = {a.id: self.view(a.id, now) for a in accounts}
        expired = [a for a in accounts if views[a.id].expired]
        if expired:
            await asyncio.gather(*(self.load(a) for a in expired))
            views.update({a.id: self.view(a.id, self.clock()) for a in expired})
        self.warm([a for a in accounts if a not in expired], views, now)
        return views

    def warm(self, accounts: Iterable[Account], views: Mapping[int, UsageView], now: float) -> None:
        """Start background fetches for stale, cold or just-reset entries (rate-limited)."""
        for account in accounts:
            view = views.get(account.id) or self.view(account.id, now)
            if quota.wants_refetch(view, self._last_refetch.get(account.id), now):
                self._last_refetch[account.id] = now
                # A window that just reset is refetched even though its entry is young (gap 13).
                self.spawn(self.load(account, force=view.just_reset))

    def spawn(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await coro
            except PoolError as exc:
                log.info("background quota work failed: %s", exc)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- loading -----------------------------------------------------------------------------

    def load(
        self, account: Account, max_age: float = quota.FRESH_SECONDS, *, force: bool = False
    ) -> asyncio.Task[UsageView]:
        """Fetch ``account``'s usage unless a young enough entry exists (``force``: unless one was
        written after this call); one fetch per account in this process (callers share the task)
        and across processes (the store lease)."""
        running = self._inflight.get(account.id)
        if running is not None and not running.done():
            return running
        task = asyncio.ensure_future(self._load(account, max_age, self.clock() if force else None))
        self._inflight[account.id] = task
        account_id = account.id

        def forget(_task: asyncio.Task[UsageView]) -> None:
            if self._inflight.get(account_id) is _task:
                del self._inflight[account_id]

        task.add_done_callback(forget)
        return task

    def _young(self, account_id: int, max_age: float, since: float | None = None) -> UsageView | None:
        now = self.clock()
        view = self.view(account_id, now)
        if since is not None:
            written = self.reads.usage(account_id)
            return view if written is not None and written.updated_at > since else None
        if view.usable and view.age(now) <= max_age:
            return view
        return None

    async def _load(self, account: Account, max_age: float, since: float | None) -> UsageView:
        young = self._young(account.id, max_age, since)
        if young is not None:
            return young
        key = f"usage:{account.id}"
        owner = f"{self.owner}-{uuid.uuid4().hex[:8]}"
        if not await self._acquire(key, owner):
            waited = 0.0
            while waited < self.wait_for_other:
                await asyncio.sleep(self.wait_step)
                waited += self.wait_step
                young = self._young(account.id, max_age, since)
                if young is not None:
                    return young
            if not await self._acquire(key, owner):
                return self.view(account.id, self.clock())
        try:
            young = self._young(account.id, max_age, since)  # double-checked under the lease
            if young is not None:
                return young
            refused = self._unauthorized.get(account.id)
            if refused is not None and self.clock() - refused < UNAUTHORIZED_QUIET:
                return self.view(account.id, self.clock())
            try:
                raw, payload = await self._fetch(account)
            except PoolError as exc:
                log.info("usage for %s not refreshed: %s", account.name, exc)
                return self.view(account.id, self.clock())
            now = self.clock()
            try:
                await asyncio.to_thread(self._store_fetched, account, raw, payload, now)
            except PoolError as exc:  # e.g. the pool file is busy: this fetch is lost, not the request
                log.warning("usage for %s not cached: %s", account.name, exc)
            return self.view(account.id, now)
        finally:
            with contextlib.suppress(PoolError):
                await asyncio.to_thread(self.store.release_lease, key, owner)

    async def _fetch(self, account: Account) -> tuple[str, dict[str, Any]]:
        """One usage fetch with a fresh token: refreshed first when due; after a 401 on a token we
        did not just refresh, one forced refresh (the refresher's backoff applies) and one retry."""
        used = account.tokens.access_token
        if self.refresher is not None:
            account = await self.refresher.ensure_fresh(account)
        self.fetches += 1
        try:
            fetched = await fetch_usage(self.http, self.upstream_url(), account)
        except UsageFetchError as exc:
            if exc.status != 401:
                raise
            if self.refresher is None or account.tokens.access_token != used:
                self._unauthorized[account.id] = self.clock()  # no token left to try
                raise
            try:
                account = await self.refresher.ensure_fresh(account, force=True)
                self.fetches += 1
                fetched = await fetch_usage(self.http, self.upstream_url(), account)
            except PoolError:
                self._unauthorized[account.id] = self.clock()
                raise
        self._unauthorized.pop(account.id, None)
        return fetched

    async def _acquire(self, key: str, owner: str) -> bool:
        try:
            return await asyncio.to_thread(self.store.acquire_lease, key, owner, self.lease_ttl)
        except PoolError as exc:  # a busy pool file counts as "someone else is fetching"
            log.info("usage lease %s not taken: %s", key, exc)
            return False

    def _store_fetched(self, account: Account, raw: str, payload: Mapping[str, Any], at: float) -> None:
        self.store.put_usage(account.id, raw, at)
        self._after_update(account, payload)

    # ---- live signals ------------------------------------------------------------------------

    def observe(self, account: Account, payload: Mapping[str, Any] | None) -> None:
        """Merge a usage-shaped payload from a live signal into the cached entry."""
        if not payload:
            return
        now = self.clock()
        entry = self.store.usage(account.id)
        old: Any = None
        if entry is not None:
            with contextlib.suppress(ValueError):
                old = json.loads(entry.raw)
        merged = signals.merge_payload(old if isinstance(old, dict) else None, payload, now)
        self.store.put_usage(account.id, json.dumps(merged, separators=(",", ":")), now)
        self._after_update(account, merged)

    def observe_headers(self, account: Account, headers: Mapping[str, str]) -> None:
        """A served response's ``x-codex-*`` headers."""
        self.observe(account, signals.payload_from_headers(headers, self.clock()))

    def observe_event(self, account: Account, data: Mapping[str, Any]) -> None:
        """A ``codex.rate_limits`` stream event."""
        self.observe(account, signals.payload_from_event(data, self.clock()))

    def observe_429(self, account: Account, headers: Mapping[str, str], body: bytes) -> None:
        """A 429's headers and body (a usage limit marks the limit reached until its reset)."""
        self.observe(account, signals.payload_from_429(headers, body, self.clock()))

    def _after_update(self, account: Account, payload: Mapping[str, Any]) -> None:
        usage = quota.parse_usage(payload)
        if usage is None:
            return
        plan = usage.plan_type
        if plan and plan.lower() != (account.plan or "").lower():
            with contextlib.suppress(PoolError):
                self.store.update_meta(account.id, plan=plan.lower())
        self._check_low(account, usage)

    def _check_low(self, account: Account, usage: Any) -> None:
        used = [w.used_percent for _, w in quota.windows(usage) if w.used_percent is not None]
        left = 100.0 - max(used) if used else None
        if left is None:
            return
        threshold = self.low_percent()
        if left < threshold and account.id not in self._low:
            self._low.add(account.id)
            if self.events is not None:
                self.events(QuotaLow(account.id, account.name, max(0.0, left)))
        elif left >= threshold:
            self._low.discard(account.id)

    # ---- poller ------------------------------------------------------------------------------

    def touch(self, accounts: Iterable[Account], now: float) -> None:
        """Mark accounts as active (they were candidates of a request) for the poller."""
        for account in accounts:
            self._active[account.id] = now

    async def sweep(self) -> int:
        """One poller pass; returns how many accounts were revalidated."""
        now = self.clock()
        for account_id, seen in list(self._active.items()):
            if now - seen > quota.ACTIVE_SECONDS:
                del self._active[account_id]
        if not self._active:
            return 0
        due: list[Account] = []
        for account in self.reads.routable(now):
            view = self.view(account.id, now)
            if quota.should_revalidate(view, self._active.get(account.id), now):
                due.append(account)
        if due:
            await asyncio.gather(*(self.load(a, quota.REVALIDATE_AGE) for a in due))
        return len(due)

    def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.sweep()
            except PoolError as exc:
                log.warning("usage poller: %s", exc)

    async def stop(self) -> None:
        tasks = [t for t in (self._poller, *self._background, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, PoolError):
                await task
        self._poller = None
