"""The refresh lease: the right, across processes, to redeem one account's refresh token.

A process takes the store lease ``refresh:<account id>`` (polling while another holds it), renews it
with a heartbeat every third of its time to live while it works, and gives it back at the end. A
holder that was killed stops renewing, so its lease lapses and the next process takes it over.

A living holder can lose its lease too: if it stalls past the lease's end (a laptop asleep, a
stopped process, a pool file locked for longer than the lease), another process may take it. The
heartbeat notices when a renewal is refused and sets :attr:`HeldLease.lost`; :meth:`HeldLease.confirm`
renews on the spot and says whether the lease is still ours. What a holder may still do after a loss
is the refresher's rule (see :mod:`tray.auth.refresh`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Protocol

from tray.errors import PoolError, TransientRefreshError

log = logging.getLogger(__name__)


class LeaseStore(Protocol):
    """The lease calls of :class:`tray.store.accounts.Store`."""

    def acquire_lease(self, key: str, owner: str, ttl: float) -> bool: ...
    def release_lease(self, key: str, owner: str) -> None: ...


class HeldLease:
    """A lease this process holds; create with :meth:`take`, end with :meth:`release`."""

    def __init__(self, store: LeaseStore, key: str, owner: str, ttl: float, name: str) -> None:
        self._store = store
        self.key, self.owner, self.ttl = key, owner, ttl
        self._name = name  # the account's name, for log lines
        self.lost = False
        self._heartbeat = asyncio.ensure_future(self._beat())

    @classmethod
    async def take(
        cls, store: LeaseStore, key: str, ttl: float, name: str, *, poll: float, patience: float
    ) -> HeldLease:
        """Wait (polling every ``poll`` s, at most ``patience`` s) until the lease is ours.

        A pool file too busy to answer counts as "not yet". Raises :class:`TransientRefreshError`
        when the time is up.
        """
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + patience
        while True:
            try:
                if await asyncio.to_thread(store.acquire_lease, key, owner, ttl):
                    return cls(store, key, owner, ttl, name)
            except PoolError as exc:
                log.info("Refresh lease for %s not taken yet: %s", name, exc)
            if time.monotonic() > deadline:
                raise TransientRefreshError(f"Another process is still refreshing {name}")
            await asyncio.sleep(poll)

    async def confirm(self) -> bool:
        """Renew now and say whether the lease is still ours (a lapsed lease nobody took is taken
        back). Raises a store error when the pool file cannot answer: nothing is confirmed then."""
        if self.lost:
            return False
        if not await asyncio.to_thread(self._store.acquire_lease, self.key, self.owner, self.ttl):
            self._lose()
        return not self.lost

    async def release(self) -> None:
        """Stop renewing and give the lease back. A busy pool file only delays the next holder until
        the lease lapses, so a failure here is logged, never raised."""
        self._heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._heartbeat
        if self.lost:
            return
        try:
            await asyncio.to_thread(self._store.release_lease, self.key, self.owner)
        except PoolError as exc:
            log.warning("Could not give back the refresh lease of %s (it lapses on its own): %s",
                        self._name, exc)

    async def _beat(self) -> None:
        while not self.lost:
            await asyncio.sleep(self.ttl / 3)
            try:
                if not await asyncio.to_thread(self._store.acquire_lease, self.key, self.owner, self.ttl):
                    self._lose()
            except PoolError as exc:
                log.warning("Could not renew the refresh lease of %s: %s", self._name, exc)

    def _lose(self) -> None:
        self.lost = True
        log.warning("The refresh lease of %s lapsed and another process took it over (this one "
                    "stalled past %g s)", self._name, self.ttl)
