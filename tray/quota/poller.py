"""The quota service's two clocks, on the proxy's event loop: the usage poller and the account
watcher. Together they keep every account's quota known without any request going through it.

- The poller passes every :data:`POLL_INTERVAL` seconds over the accounts in routing: an entry over
  3 min old of an account that served a request in the last 5 min is revalidated, any other over
  10 min old too (a slow pace: a quiet pool still shows current numbers), and an entry whose window
  reset passed without traffic is fetched again (at most once a minute), so "resetting" does not
  last. A pass that fails is logged and the next one comes later (backing off up to
  :data:`POLL_BACKOFF_MAX` intervals).
- The watcher looks every :data:`NEW_ACCOUNT_CHECK` seconds at the pool file (any process may have
  changed it). Its first look, as the proxy starts, fetches every enabled account whose entry is
  not fresh. After that, an account that comes into the pool (added, signed in again after it
  needed a login, turned back on) is fetched at once, whatever held its fetches back before, and an
  enabled account with no entry at all is fetched too.

Both only decide *when*; fetching (the lease, the backoff, the token) is the quota service's, which
they reach through the narrow :class:`Loader` it gives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from tray.errors import PoolError
from tray.models import Account, AccountState, Clock
from tray.quota import usage as quota
from tray.quota.usage import UsageView
from tray.store import Store

log = logging.getLogger(__name__)

POLL_INTERVAL = 30.0
POLL_BACKOFF_MAX = 8.0  # after failed passes the poller waits up to this many intervals
NEW_ACCOUNT_CHECK = 1.0  # seconds between looks for accounts without any quota entry


class Loader(Protocol):
    """What the poller and the watcher use of :class:`tray.quota.service.QuotaService`."""

    reads: Store
    clock: Clock

    def view(self, account_id: int, now: float) -> UsageView: ...

    def backing_off(self, account_id: int, now: float) -> bool: ...

    def fetching(self, account_id: int) -> bool: ...

    def load(self, account: Account, max_age: float = ..., *, force: bool = False,
             retry: bool = False) -> asyncio.Task[UsageView]: ...

    def warm(self, accounts: Iterable[Account], views: Mapping[int, UsageView], now: float) -> int: ...

    def refresh(self, accounts: Iterable[Account]) -> None: ...

    def welcome(self, accounts: Iterable[Account]) -> None: ...


class Poller:
    def __init__(self, loader: Loader, *, interval: float = POLL_INTERVAL) -> None:
        self.loader = loader
        self.interval = interval
        self._active: dict[int, float] = {}  # account id -> last request time
        self._poller: asyncio.Task[None] | None = None
        self._newcomers: asyncio.Task[None] | None = None
        self._enabled: set[int] | None = None  # enabled account ids at the watcher's last look

    def touch(self, accounts: Iterable[Account], now: float) -> None:
        """Mark accounts as active (they were candidates of a request)."""
        for account in accounts:
            self._active[account.id] = now

    async def sweep(self) -> int:
        """One poller pass; returns how many accounts were revalidated."""
        loader = self.loader
        now = loader.clock()
        for account_id, seen in list(self._active.items()):
            if now - seen > quota.ACTIVE_SECONDS:
                del self._active[account_id]
        due: list[Account] = []
        resetting: dict[int, UsageView] = {}
        accounts = {a.id: a for a in loader.reads.routable(now)}
        for account in accounts.values():
            view = loader.view(account.id, now)
            if loader.backing_off(account.id, now):
                continue  # its background retry comes first
            if view.why == "reset passed":
                resetting[account.id] = view
            elif quota.should_revalidate(view, self._active.get(account.id), now):
                due.append(account)
        started = loader.warm([accounts[i] for i in resetting], resetting, now)
        if due:
            await asyncio.gather(*(loader.load(a, quota.REVALIDATE_AGE) for a in due))
        return len(due) + started

    def sweep_newcomers(self) -> int:
        """One look of the watcher: the first fetches every enabled account's usage that is not
        fresh; later ones fetch accounts that came into the pool since the last look at once.
        Then a fetch starts for each enabled account that has no quota entry at all (one per
        account a minute at most, none during a backoff); returns how many of those started."""
        loader = self.loader
        enabled = [a for a in loader.reads.accounts() if a.state is AccountState.ENABLED]
        if self._enabled is None:
            loader.refresh(enabled)
        else:
            loader.welcome([a for a in enabled if a.id not in self._enabled])
        self._enabled = {a.id for a in enabled}
        now, entries = loader.clock(), loader.reads.usages()
        cold = [a for a in enabled if a.id not in entries and not loader.fetching(a.id)]
        return loader.warm(cold, {}, now)

    def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())
        if self._newcomers is None:
            self._newcomers = asyncio.ensure_future(self._watch_newcomers())

    async def _watch_newcomers(self) -> None:
        while True:
            await asyncio.sleep(NEW_ACCOUNT_CHECK)  # the first look a moment after the start
            try:
                self.sweep_newcomers()
            except PoolError as exc:  # a busy or damaged pool file: look again next time
                log.info("looking for new accounts failed: %s", exc)
            except Exception:  # a bug must not end the watcher: it looks again next time
                log.exception("looking for new accounts failed")

    async def _poll(self) -> None:
        """A pass every :attr:`interval`; after failed passes the pause doubles, up to
        :data:`POLL_BACKOFF_MAX` intervals, and the poller goes on whatever the error was."""
        failures = 0
        while True:
            await asyncio.sleep(self.interval * min(POLL_BACKOFF_MAX, 2.0 ** min(failures, 10)))
            try:
                await self.sweep()
            except Exception as exc:
                failures += 1
                log.warning("usage poller pass failed: %s", exc,
                            exc_info=None if isinstance(exc, PoolError) else exc)
            else:
                failures = 0

    async def stop(self) -> None:
        tasks = [t for t in (self._poller, self._newcomers) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, PoolError):
                await task
        self._poller = self._newcomers = None
