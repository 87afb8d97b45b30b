"""Token refresh that never burns a refresh token and never drops its answer.

ChatGPT refresh tokens are single use: the first redemption returns a new one and consumes the old;
presenting the old one again answers ``refresh_token_reused`` and may revoke the whole login. So:

1. **Lease.** Only the holder of the store lease ``refresh:<account id>`` may call the token endpoint
   (:mod:`tray.auth.lease`: renewed by a heartbeat, so only a holder that was killed or stalled past its
   end loses it; the next process then takes it over).
2. **Re-read.** Whoever gets the lease re-reads the row first. If the access token changed while it
   waited (another task or process refreshed, or a re-login), it uses that row and does not refresh.
3. **Confirm, then present.** Right before the token call the lease is renewed; a process that has
   lost it (it stalled and another took over) never presents the refresh token.
4. **Keep the answer.** The endpoint redeems the token when the request arrives, so its answer must
   not be lost: the token call runs in a background task that no request's cancellation touches,
   awaited up to :data:`CALL_LIMIT`. Once it answers, the new set is served from memory at once and
   stored by compare-and-set on the redeemed refresh token, retried while the pool file is busy
   (:mod:`tray.auth.tokencommit`), the lease kept alive meanwhile. An answer that arrives after the lease
   was lost is still committed the same way: the compare-and-set fails harmlessly if the new holder
   committed first. A refusal after the lease was lost is left to the new holder to judge.

Requests do not wait for a slow token call: a token that is due but still valid is used while the
refresh runs; an expired one waits at most :data:`REQUEST_WAIT`, then the request fails over with
:class:`TransientRefreshError`. The engine drains refreshes under way (:meth:`Refresher.drain`) before
it closes its HTTP client. In one process, callers share one refresh per account. For the primary
account, the user's auth files are re-read before refreshing (another client may have refreshed)
and written after the new set is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from tray.auth.claims import decode_payload
from tray.auth.files import PrimarySync
from tray.auth.lease import HeldLease
from tray.auth.oauth import OAuthClient
from tray.auth.tokencommit import TokenStore, commit_until_stored
from tray.errors import (
    AuthFileError,
    PermanentRefreshError,
    PoolError,
    StoreError,
    TransientRefreshError,
)
from tray.models import Account, AccountState, Clock, EventSink, NeedsLogin

log = logging.getLogger(__name__)

LEAD_TIME = 300.0  # refresh this long before expiry (at most half the token's lifetime)
TIMER_INTERVAL = 60.0  # seconds between passes of the proactive refresh timer (Engine)
LEASE_TTL = 30.0  # seconds; renewed every third of it while a refresh or its commit is under way
CALL_LIMIT = 90.0  # seconds a token call is awaited (in the background) before it is given up
REQUEST_WAIT = 2.0  # seconds a request waits for a refresh it needs before failing over
BACKOFF_FIRST, BACKOFF_MAX = 5.0, 300.0  # transient failures: wait before trying again


class RefreshStore(TokenStore, Protocol):
    """The part of :class:`tray.store.accounts.Store` the refresher uses."""

    def set_state(self, account_id: int, state: AccountState, reason: str | None = ...) -> Account: ...
    def acquire_lease(self, key: str, owner: str, ttl: float) -> bool: ...
    def release_lease(self, key: str, owner: str) -> None: ...


@dataclass
class _Job:
    """One account's refresh under way in this process. ``ready`` is done once the token endpoint
    has answered (``pending`` then holds the account with its new, maybe not yet stored, tokens) or
    the job has ended."""

    ready: asyncio.Future[None]
    pending: Account | None = None
    task: asyncio.Task[Account] = field(init=False)

    def answered(self, account: Account) -> None:
        self.pending = account
        if not self.ready.done():
            self.ready.set_result(None)


def refresh_due(account: Account, now: float, lead: float = LEAD_TIME) -> bool:
    """Whether the access token is within the lead time of expiry. The lead never exceeds half the
    token's lifetime (issued-at from the JWT, else when the row's tokens were last written)."""
    tokens = account.tokens
    issued = decode_payload(tokens.access_token).get("iat")
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        issued = account.updated_at
    lifetime = max(tokens.expires_at - float(issued), 0.0)
    return now >= tokens.expires_at - min(lead, lifetime / 2)


class Refresher:
    """Keeps accounts' access tokens fresh; see the module docstring for the protocol."""

    def __init__(
        self,
        store: RefreshStore,
        oauth: OAuthClient,
        sync: PrimarySync | None,
        clock: Clock,
        events: EventSink | None,
        *,
        lease_ttl: float = LEASE_TTL,
        poll_interval: float = 0.1,
        call_timeout: float = CALL_LIMIT,
        request_wait: float = REQUEST_WAIT,
    ) -> None:
        self._store = store
        self._oauth = oauth
        self._sync = sync
        self._clock = clock
        self._events = events
        self.lease_ttl = lease_ttl
        self.call_timeout = call_timeout
        self._poll = poll_interval
        self._request_wait = request_wait
        self._jobs: dict[int, _Job] = {}
        self._backoff: dict[int, tuple[float, float]] = {}  # account id -> (retry at, last delay)

    async def ensure_fresh(self, account: Account, *, force: bool = False) -> Account:
        """Return ``account`` with a usable access token, refreshing when due (or, with ``force``,
        after upstream rejected ``account.tokens.access_token``). A due token that is still valid
        is returned at once while the refresh runs; new tokens are returned as soon as the token
        endpoint has answered, before they are stored.

        Raises :class:`PermanentRefreshError` after marking the account *needs login*, or
        :class:`TransientRefreshError` when no usable access token is left or the refresh did not
        finish within the request's wait (the refresh itself goes on).
        """
        job = self._jobs.get(account.id)
        if job is not None and job.pending is not None:
            return self._usable(job.pending, account, force)
        now = self._clock()
        if not force and not refresh_due(account, now):
            return account
        retry_at = self._backoff.get(account.id, (0.0, 0.0))[0]
        if job is None and now < retry_at:
            if not force and account.tokens.expires_at > now:
                return account  # a failed proactive refresh never throws a valid token away
            raise TransientRefreshError(
                f"Token refresh for {account.name} failed recently; retrying in {retry_at - now:.0f} s"
            )
        job = job or self._start(account, force)
        if not force and account.tokens.expires_at > now:
            return account
        try:
            await asyncio.wait_for(asyncio.shield(job.ready), self._request_wait)
        except TimeoutError:
            raise TransientRefreshError(
                f"The token refresh for {account.name} is still under way; trying another account"
            ) from None
        return self._usable(self._outcome(job), account, force)

    async def refresh_due_accounts(self, accounts: Iterable[Account]) -> int:
        """One pass of the proactive refresh timer: refresh each of ``accounts`` whose token is due,
        without waiting for a request, and wait for the outcome. Failures are logged, never raised:
        a permanent one has already marked the account *needs login*; a transient one is retried on
        a later pass. Returns how many accounts got new tokens."""
        due = [a for a in accounts if refresh_due(a, self._clock())]
        results = await asyncio.gather(*(self._settle(a) for a in due), return_exceptions=True)
        refreshed = 0
        for account, result in zip(due, results, strict=True):
            if isinstance(result, Account):
                refreshed += result.tokens.access_token != account.tokens.access_token
            elif isinstance(result, PermanentRefreshError):
                log.info("Proactive refresh: %s needs a new login", account.name)
            elif isinstance(result, PoolError):
                log.warning("Proactive token refresh for %s failed: %s", account.name, result)
            elif isinstance(result, Exception):
                log.error("Proactive token refresh for %s failed", account.name, exc_info=result)
            else:
                raise result  # cancellation: the engine is stopping
        return refreshed

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the refreshes under way (token calls and the storing of their answers), at most
        ``timeout`` seconds (default: the token call's bound), so nothing answered is lost when the
        process stops. Whatever is still running then is given up, and said so in the log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.call_timeout if timeout is None else timeout)
        while self._jobs and loop.time() < deadline:
            tasks = [job.task for job in self._jobs.values()]
            await asyncio.wait(tasks, timeout=deadline - loop.time())
        for account_id, job in list(self._jobs.items()):
            if job.pending is not None:
                log.error("Stopping before the new tokens of %s were stored; it will need a new login",
                          job.pending.name)
            else:
                log.warning("Stopping during the token refresh of account %d", account_id)
            job.task.cancel()
        await asyncio.gather(*(job.task for job in list(self._jobs.values())), return_exceptions=True)

    def _start(self, account: Account, force: bool) -> _Job:
        job = _Job(asyncio.get_running_loop().create_future())
        job.task = asyncio.ensure_future(self._run(account, force, job))
        self._jobs[account.id] = job

        def finished(task: asyncio.Task[Account]) -> None:
            if self._jobs.get(account.id) is job:
                del self._jobs[account.id]
            if not job.ready.done():
                job.ready.set_result(None)
            if not task.cancelled():
                task.exception()  # retrieved here; the callers that wait re-raise it

        job.task.add_done_callback(finished)
        return job

    async def _settle(self, account: Account) -> Account:
        """The timer's way in: the whole refresh, however long it takes (backoff respected)."""
        job = self._jobs.get(account.id)
        if job is None:
            if self._clock() < self._backoff.get(account.id, (0.0, 0.0))[0]:
                return account
            job = self._start(account, False)
        await asyncio.wait({job.task})  # not cancelled with the caller
        return self._outcome(job)

    @staticmethod
    def _outcome(job: _Job) -> Account:
        if job.task.done():
            if job.task.cancelled():
                raise TransientRefreshError("The token refresh was stopped")
            return job.task.result()
        assert job.pending is not None  # ready without an end: the endpoint has answered
        return job.pending

    @staticmethod
    def _usable(result: Account, account: Account, force: bool) -> Account:
        if force and result.tokens.access_token == account.tokens.access_token:
            # We joined a proactive refresh that failed and kept this token; upstream has just
            # rejected it, so it is not usable for us.
            raise TransientRefreshError(f"Token refresh for {account.name} failed; try again shortly")
        return result

    async def _run(self, seen: Account, force: bool, job: _Job) -> Account:
        try:
            lease = await HeldLease.take(self._store, f"refresh:{seen.id}", self.lease_ttl, seen.name,
                                         poll=self._poll, patience=self.call_timeout + self.lease_ttl)
            try:
                return await self._refresh_holding_lease(seen, force, lease, job)
            finally:
                await lease.release()
        except StoreError as exc:  # before the token call, or while judging a refusal
            raise TransientRefreshError(f"Token refresh for {seen.name} did not run: {exc}") from exc

    async def _refresh_holding_lease(
        self, seen: Account, force: bool, lease: HeldLease, job: _Job
    ) -> Account:
        current = await self._reread(seen)
        if self._settled(current, seen, force):
            return current
        if current.primary and self._sync is not None:
            current = await asyncio.to_thread(self._adopt, current)
            if self._settled(current, seen, force):
                return current
        if not await lease.confirm():
            raise TransientRefreshError(f"Another process took over the token refresh of {current.name}")
        try:
            tokens = await self._oauth.refresh(current.tokens.refresh_token, timeout=self.call_timeout)
        except PermanentRefreshError as exc:
            if not await lease.confirm():
                # The new holder may have redeemed this token first and holds its successor.
                raise TransientRefreshError(
                    f"Another process took over the token refresh of {current.name}"
                ) from exc
            return await self._permanent(current, exc)
        except TransientRefreshError:
            self._note_failure(current.id)
            if not force and current.tokens.expires_at > self._clock():
                log.warning("Token refresh for %s failed; the current token stays in use", current.name)
                return current
            raise
        self._backoff.pop(current.id, None)
        job.answered(replace(current, tokens=tokens))
        return await commit_until_stored(self._store, self._sync, current, tokens)

    async def _reread(self, seen: Account) -> Account:
        current = await asyncio.to_thread(self._store.get, seen.id)
        if current is None:
            raise TransientRefreshError(f"Account {seen.name} was removed from the pool")
        if current.state is AccountState.NEEDS_LOGIN:
            reason = current.state_reason or "needs login"
            raise PermanentRefreshError(f"{current.name} needs a new login ({reason})", reason)
        return current

    def _settled(self, current: Account, seen: Account, force: bool) -> bool:
        """Someone else already refreshed (or adopted) while we waited: use their tokens."""
        changed = current.tokens.access_token != seen.tokens.access_token
        return changed and (force or not refresh_due(current, self._clock()))

    def _adopt(self, account: Account) -> Account:
        assert self._sync is not None
        try:
            return self._sync.adopt_newer(account)
        except AuthFileError as exc:
            log.warning("%s", exc)
            return account

    async def _permanent(self, current: Account, exc: PermanentRefreshError) -> Account:
        # The primary's token may have been redeemed by the user's own client just now: if its auth
        # file holds a newer set, that one is good and the account does not need a login.
        if current.primary and self._sync is not None:
            adopted = await asyncio.to_thread(self._adopt, current)
            if adopted.tokens.refresh_token != current.tokens.refresh_token:
                return adopted
        # A re-login while the call was in flight replaced the dead token: nothing is lost.
        latest = await asyncio.to_thread(self._store.get, current.id)
        if latest is not None and latest.tokens.refresh_token != current.tokens.refresh_token:
            return latest
        reason = f"sign-in expired ({exc.code})"
        await asyncio.to_thread(self._store.set_state, current.id, AccountState.NEEDS_LOGIN, reason)
        log.warning("Account %s needs a new login: %s", current.name, exc.code)
        if self._events is not None:
            self._events(NeedsLogin(account_id=current.id, name=current.name, reason=reason))
        raise exc

    def _note_failure(self, account_id: int) -> None:
        delay = self._backoff.get(account_id, (0.0, 0.0))[1]
        delay = BACKOFF_FIRST if delay <= 0 else min(delay * 2, BACKOFF_MAX)
        self._backoff[account_id] = (self._clock() + delay, delay)
