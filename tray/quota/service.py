"""Keeps the shared quota cache warm and current (runs on the proxy's event loop; its store writes
run in worker threads, since another process may hold the pool file's write lock).

- :meth:`QuotaService.prepare` gives routing a usage view per candidate. An entry whose scored
  window's reset deadline passed is refetched; a request waits at most :data:`EXPIRED_WAIT` seconds
  from the fetch's start for it, and meanwhile the account is ranked unknown (neutral).
  Stale or cold entries are used (or ranked neutral) while a background fetch warms them; a window
  reporting ``reset_after_seconds = 0`` triggers at most one refetch per account per minute.
- A failed fetch is retried in the background with backoff (:data:`RETRY_FIRST` doubling to
  :data:`RETRY_MAX` seconds, per account and per process); until then neither requests nor the
  poller fetch that account's usage, and it is ranked unknown unless a usable entry remains.
- One usage fetch per account across processes: an in-process task map, then the store lease
  ``usage:<id>``; a process that loses the lease waits for the winner's row and re-reads it.
- When to fetch without a request (the poller and the new-account watcher) is
  :mod:`tray.quota.poller`'s; it reaches the service through :class:`~tray.quota.poller.Loader`.
- Usage is fetched with a fresh access token: the injected refresher renews a due or expired one
  first; a 401 gets one forced refresh and one retry, and a 401 that survives that counts as "no
  data" and quiets that account's fetches for :data:`UNAUTHORIZED_QUIET` seconds (no 401 loop).
- Live signals (``x-codex-*`` headers, ``codex.rate_limits`` events, 429 bodies) are merged into the
  cached payload for free, in one write transaction (two processes merging at once both land).
- No blind spot: :meth:`QuotaService.refresh` fetches accounts' usage now unless it is fresh
  (the window does so when it opens); :meth:`QuotaService.fetch_state` tells whether a fetch is in
  flight and what the last one that failed said.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Iterable, Mapping
from functools import partial
from typing import Any, Protocol

import httpx

from tray.errors import PoolError
from tray.models import Account, AccountState, Clock, EventSink
from tray.quota import usage as quota
from tray.quota.backoff import Backoff
from tray.quota.cache import LOW_PERCENT_LEFT, QuotaCache
from tray.quota.fetcher import UsageFetchError, fetch_usage
from tray.quota.poller import POLL_INTERVAL, Poller
from tray.quota.usage import UsageView
from tray.store import Store

log = logging.getLogger(__name__)

LEASE_TTL = 25.0  # seconds; longer than the usage call's own time limit (15 s)
WAIT_FOR_OTHER = 5.0  # how long to wait for another process's fetch before trying the lease again
WAIT_STEP = 0.25
EXPIRED_WAIT = 0.5  # seconds a refetch of an entry whose reset passed may hold requests up
RETRY_FIRST = 10.0  # seconds from a failed usage fetch to its background retry, doubling ...
RETRY_MAX = 300.0  # ... up to this
UNAUTHORIZED_QUIET = 300.0  # seconds without usage fetches for an account upstream keeps refusing


class TokenSource(Protocol):
    """The part of :class:`tray.auth.refresh.Refresher` the quota service uses."""

    async def ensure_fresh(self, account: Account, *, force: bool = False) -> Account: ...


class QuotaService(QuotaCache):
    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        upstream_url: str,
        *,
        clock: Clock,
        events: EventSink | None = None,
        low_percent: float = LOW_PERCENT_LEFT,
        lease_ttl: float = LEASE_TTL,
        wait_for_other: float = WAIT_FOR_OTHER,
        wait_step: float = WAIT_STEP,
        poll_interval: float = POLL_INTERVAL,
        reads: Store | None = None,
        refresher: TokenSource | None = None,
        expired_wait: float = EXPIRED_WAIT,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        super().__init__(store, clock=clock, events=events, low_percent=low_percent, reads=reads)
        self.http = http
        self.upstream_url = upstream_url  # fixed for the engine's life: a change applies on restart
        self.lease_ttl = lease_ttl
        self.wait_for_other = wait_for_other
        self.wait_step = wait_step
        self.refresher = refresher
        self.expired_wait = expired_wait
        self.retries = Backoff(retry_first, retry_max)  # failed fetches, by account id
        self.owner = f"quota-{uuid.uuid4().hex}"
        self.fetches = 0  # usage calls this process made (tests and the status page read it)
        self._inflight: dict[int, asyncio.Task[UsageView]] = {}
        self._started: dict[int, float] = {}  # account id -> loop time its fetch in flight began
        self._retrying: dict[int, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._last_refetch: dict[int, float] = {}
        self._unauthorized: dict[int, float] = {}  # account id -> when upstream last refused a fresh token
        self.poller = Poller(self, interval=poll_interval)
        self.errors: dict[int, str] = {}  # account id -> what its last failed fetch said

    # ---- views -------------------------------------------------------------------------------

    async def prepare(self, accounts: list[Account], now: float) -> dict[int, UsageView]:
        """Views for ``accounts``: expired entries refetched (waiting a moment at most, see
        :data:`EXPIRED_WAIT`); stale/cold ones warmed in the background."""
        views = {a.id: self.view(a.id, now) for a in accounts}
        expired = [a for a in accounts if views[a.id].expired and not self.retries.waiting(a.id, now)]
        if expired:
            await self._briefly([self.load(a) for a in expired], [a.id for a in expired])
            views.update({a.id: self.view(a.id, self.clock()) for a in expired})
        self.warm([a for a in accounts if a not in expired], views, now)
        return views

    async def _briefly(self, tasks: list[asyncio.Task[UsageView]], account_ids: list[int]) -> None:
        """Wait for ``tasks`` until :attr:`expired_wait` seconds after the latest of them began;
        they go on in the background after that (a slow usage API costs one moment, once)."""
        loop = asyncio.get_running_loop()
        began = max(self._started.get(i, loop.time()) for i in account_ids)
        timeout = began + self.expired_wait - loop.time()
        if timeout > 0:
            await asyncio.wait(tasks, timeout=timeout)

    def warm(self, accounts: Iterable[Account], views: Mapping[int, UsageView], now: float) -> int:
        """Start background fetches for stale, cold or just-reset entries (rate-limited; not for
        accounts waiting out a failed fetch's backoff); returns how many were started."""
        started = 0
        for account in accounts:
            view = views.get(account.id) or self.view(account.id, now)
            if self.retries.waiting(account.id, now):
                continue
            if quota.wants_refetch(view, self._last_refetch.get(account.id), now):
                self._last_refetch[account.id] = now
                # A window that just reset is refetched even though its entry is young.
                self.spawn(self.load(account, force=view.just_reset))
                started += 1
        return started

    def spawn(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await coro
            except PoolError as exc:
                log.info("background quota work failed: %s", exc)
            except Exception:  # a bug must not pass silently; the service goes on
                log.exception("background quota work failed")

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- loading -----------------------------------------------------------------------------

    def load(
        self, account: Account, max_age: float = quota.FRESH_SECONDS, *, force: bool = False,
        retry: bool = False,
    ) -> asyncio.Task[UsageView]:
        """Fetch ``account``'s usage unless a young enough entry exists (``force``: unless one was
        written after this call) or a failed fetch's backoff runs (``retry``: the background retry
        that ends it); one fetch per account in this process (callers share the task) and across
        processes (the store lease)."""
        running = self._inflight.get(account.id)
        if running is not None and not running.done():
            return running
        since = self.clock() if force else None
        task = asyncio.ensure_future(self._load(account, max_age, since, retry))
        self._inflight[account.id] = task
        self._started[account.id] = asyncio.get_running_loop().time()
        account_id = account.id

        def forget(_task: asyncio.Task[UsageView]) -> None:
            if self._inflight.get(account_id) is _task:
                del self._inflight[account_id]
                del self._started[account_id]
            if not _task.cancelled() and (exc := _task.exception()) is not None:
                log.error("usage fetch for account %d failed", account_id, exc_info=exc)

        task.add_done_callback(forget)
        return task

    def _young(self, account_id: int, max_age: float, since: float | None = None) -> UsageView | None:
        """A young enough entry, if there is one; finding one ends a failed fetch's backoff (the
        entry is as good as a retry would give)."""
        found = self._young_entry(account_id, max_age, since)
        if found is not None:
            self.retries.succeeded(account_id)
            self.errors.pop(account_id, None)
        return found

    def _young_entry(self, account_id: int, max_age: float, since: float | None) -> UsageView | None:
        now = self.clock()
        view = self.view(account_id, now)
        if since is not None:
            written = self.reads.usage(account_id)
            return view if written is not None and written.updated_at > since else None
        if view.usable and view.age(now) <= max_age:
            return view
        return None

    async def _load(self, account: Account, max_age: float, since: float | None, retry: bool) -> UsageView:
        young = self._young(account.id, max_age, since)
        if young is not None:
            return young
        if not retry and self.retries.waiting(account.id, self.clock()):
            return self.view(account.id, self.clock())
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
                self._failed(account, exc)
                return self.view(account.id, self.clock())
            self.retries.succeeded(account.id)
            self.errors.pop(account.id, None)
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
            fetched = await fetch_usage(self.http, self.upstream_url, account)
        except UsageFetchError as exc:
            if exc.status != 401:
                raise
            if self.refresher is None or account.tokens.access_token != used:
                self._unauthorized[account.id] = self.clock()  # no token left to try
                raise
            try:
                account = await self.refresher.ensure_fresh(account, force=True)
                self.fetches += 1
                fetched = await fetch_usage(self.http, self.upstream_url, account)
            except PoolError:
                self._unauthorized[account.id] = self.clock()
                raise
        self._unauthorized.pop(account.id, None)
        return fetched

    def _failed(self, account: Account, exc: PoolError) -> None:
        refused = self._unauthorized.get(account.id)
        if refused is not None and self.clock() - refused < UNAUTHORIZED_QUIET:
            log.info("usage for %s not refreshed: %s", account.name, exc)
            self.errors[account.id] = f"{exc}; not asked again for {UNAUTHORIZED_QUIET / 60:.0f} min"
            return  # quieted instead (see UNAUTHORIZED_QUIET); no retries against a refusal
        step = self.retries.failed(account.id, self.clock())
        self.errors[account.id] = f"{exc}; trying again in {step.delay:.0f} s"
        log.info("usage for %s not refreshed: %s; trying again in %.0f s", account.name, exc, step.delay)
        if account.id not in self._retrying:
            task = asyncio.ensure_future(self._retry(account.id))
            self._retrying[account.id] = task
            task.add_done_callback(partial(self._retry_ended, account.id))

    def _retry_ended(self, account_id: int, _task: asyncio.Task[None]) -> None:
        self._retrying.pop(account_id, None)

    async def _retry(self, account_id: int) -> None:
        """Fetch a failed account's usage again after each backoff until it works, the account is
        gone or disabled, or a usable entry turned up meanwhile."""
        while (step := self.retries.step(account_id)) is not None:
            await asyncio.sleep(step.delay)
            try:
                account = self.reads.get(account_id)
                if account is None or account.state is not AccountState.ENABLED:
                    self.retries.succeeded(account_id)  # nothing left to retry for
                    return
                await self.load(account, retry=True)
            except Exception as exc:  # the retry goes on whatever happened to this try
                log.warning("usage retry for account %d failed", account_id,
                            exc_info=None if isinstance(exc, PoolError) else exc)
                if self.retries.step(account_id) is step:
                    self.retries.failed(account_id, self.clock())

    async def _acquire(self, key: str, owner: str) -> bool:
        try:
            return await asyncio.to_thread(self.store.acquire_lease, key, owner, self.lease_ttl)
        except PoolError as exc:  # a busy pool file counts as "someone else is fetching"
            log.info("usage lease %s not taken: %s", key, exc)
            return False

    # ---- the poller and the watcher (tray.quota.poller) --------------------------------------

    def backing_off(self, account_id: int, now: float) -> bool:
        """Whether a failed fetch's backoff holds this account's fetches back now."""
        return self.retries.waiting(account_id, now)

    def fetching(self, account_id: int) -> bool:
        """Whether this process is fetching the account's usage now."""
        task = self._inflight.get(account_id)
        return task is not None and not task.done()

    def touch(self, accounts: Iterable[Account], now: float) -> None:
        """Mark accounts as active (they were candidates of a request) for the poller."""
        self.poller.touch(accounts, now)

    async def sweep(self) -> int:
        """One poller pass; returns how many accounts were revalidated."""
        return await self.poller.sweep()

    def sweep_newcomers(self) -> int:
        """Start a fetch for each account in routing without any quota entry; returns how many."""
        return self.poller.sweep_newcomers()

    def start(self) -> None:
        self.poller.start()

    # ---- no blind spot -----------------------------------------------------------------------

    def fetch_state(self, account_id: int) -> tuple[bool, str | None]:
        """``(in flight, error)``: whether this process is fetching the account's usage now, and
        what its last failed fetch said (``None`` once one worked)."""
        return self.fetching(account_id), self.errors.get(account_id)

    def refresh(self, accounts: Iterable[Account]) -> None:
        """Fetch the enabled ``accounts``' usage now, in the background, where it is not fresh (a
        failed fetch's backoff still applies). An entry under a minute old is the rate limit: the
        window opened twice, or the app started twice, asks upstream once."""
        for account in accounts:
            if account.state is AccountState.ENABLED:
                self.spawn(self.load(account))

    def welcome(self, accounts: Iterable[Account]) -> None:
        """Accounts that just came into the pool (added, signed in again, turned back on): what held
        their fetches back (a refusal of the old token, a failed fetch's backoff) no longer holds,
        and their usage is fetched now, however young their entry."""
        for account in accounts:
            self._unauthorized.pop(account.id, None)
            self.retries.succeeded(account.id)
            self.spawn(self.load(account, force=True))

    async def stop(self) -> None:
        await self.poller.stop()
        tasks = [*self._background, *self._inflight.values(), *self._retrying.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, PoolError):
                await task
