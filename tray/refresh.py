"""Token refresh that never burns a refresh token.

ChatGPT refresh tokens are single use: the first redemption returns a new one and consumes the old;
presenting the old one again answers ``refresh_token_reused`` and may revoke the whole login. So:

1. **Lease.** Only the holder of the store lease ``refresh:<account id>`` may call the token endpoint.
   The lease outlives the token call's own timeout and is renewed while the holder works, so only a
   holder that was killed loses it (after one lease period); the next process then takes it over.
2. **Re-read.** Whoever gets the lease re-reads the row first. If the access token changed while it
   waited (another task or process refreshed, or a re-login), it uses that row and does not refresh.
3. **Compare-and-set.** New tokens are committed with ``update_tokens(..., expected_refresh_token=old)``
   *before* the lease is released, so a waiter always finds them.

In one process, callers share one in-flight task per account. For the primary account, the user's
auth files are re-read before refreshing (another client may have refreshed) and written after.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Protocol

from tray.authfiles import PrimarySync
from tray.claims import decode_payload, identity_and_meta
from tray.errors import (
    AuthFileError,
    PermanentRefreshError,
    PoolError,
    TransientRefreshError,
)
from tray.models import Account, AccountState, Clock, EventSink, NeedsLogin, TokenSet
from tray.oauth import OAuthClient

log = logging.getLogger(__name__)

LEAD_TIME = 300.0  # refresh this long before expiry (at most half the token's lifetime)
TIMER_INTERVAL = 60.0  # seconds between passes of the proactive refresh timer (Engine)
LEASE_MARGIN = 10.0  # lease = token call timeout + this
BACKOFF_FIRST, BACKOFF_MAX = 5.0, 300.0  # transient failures: wait before trying again


class RefreshStore(Protocol):
    """The part of :class:`tray.store.Store` the refresher uses."""

    def get(self, account_id: int) -> Account | None: ...
    def update_tokens(
        self, account_id: int, tokens: TokenSet, expected_refresh_token: str | None = ...
    ) -> bool: ...
    def update_meta(self, account_id: int, plan: str | None = ..., email: str | None = ...) -> None: ...
    def set_state(self, account_id: int, state: AccountState, reason: str | None = ...) -> Account: ...
    def clear_usage(self, account_id: int) -> None: ...
    def acquire_lease(self, key: str, owner: str, ttl: float) -> bool: ...
    def release_lease(self, key: str, owner: str) -> None: ...


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
        lease_ttl: float | None = None,
        poll_interval: float = 0.1,
    ) -> None:
        self._store = store
        self._oauth = oauth
        self._sync = sync
        self._clock = clock
        self._events = events
        self.lease_ttl = lease_ttl if lease_ttl is not None else oauth.timeout + LEASE_MARGIN
        self._poll = poll_interval
        self._inflight: dict[int, asyncio.Task[Account]] = {}
        self._backoff: dict[int, tuple[float, float]] = {}  # account id -> (retry at, last delay)

    async def ensure_fresh(self, account: Account, *, force: bool = False) -> Account:
        """Return ``account`` with a usable access token, refreshing when due (or, with ``force``,
        after upstream rejected ``account.tokens.access_token``).

        Raises :class:`PermanentRefreshError` after marking the account *needs login*, or
        :class:`TransientRefreshError` only when no usable access token is left.
        """
        now = self._clock()
        if not force and not refresh_due(account, now):
            return account
        retry_at = self._backoff.get(account.id, (0.0, 0.0))[0]
        if now < retry_at:
            if not force and account.tokens.expires_at > now:
                return account  # a failed proactive refresh never throws a valid token away
            raise TransientRefreshError(
                f"Token refresh for {account.name} failed recently; retrying in {retry_at - now:.0f} s"
            )
        task = self._inflight.get(account.id)
        if task is None:
            task = asyncio.ensure_future(self._locked_refresh(account, force))
            self._inflight[account.id] = task
            account_id = account.id

            def forget(_: asyncio.Task[Account]) -> None:
                self._inflight.pop(account_id, None)

            task.add_done_callback(forget)
        result = await asyncio.shield(task)
        if force and result.tokens.access_token == account.tokens.access_token:
            # We joined a proactive refresh that failed and kept this token; upstream has just
            # rejected it, so it is not usable for us.
            raise TransientRefreshError(f"Token refresh for {account.name} failed; try again shortly")
        return result

    async def refresh_due_accounts(self, accounts: Iterable[Account]) -> int:
        """One pass of the proactive refresh timer: refresh each of ``accounts`` whose token is due,
        without waiting for a request. Failures are logged, never raised: a permanent one has
        already marked the account *needs login*; a transient one is retried on a later pass.
        Returns how many accounts got new tokens."""
        due = [a for a in accounts if refresh_due(a, self._clock())]
        results = await asyncio.gather(*(self.ensure_fresh(a) for a in due), return_exceptions=True)
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

    async def _locked_refresh(self, seen: Account, force: bool) -> Account:
        key, owner = f"refresh:{seen.id}", f"{uuid.uuid4().hex}"
        deadline = time.monotonic() + 2 * self.lease_ttl
        while not await asyncio.to_thread(self._store.acquire_lease, key, owner, self.lease_ttl):
            if time.monotonic() > deadline:
                raise TransientRefreshError(f"Another process is still refreshing {seen.name}")
            await asyncio.sleep(self._poll)
        heartbeat = asyncio.ensure_future(self._keep_lease(key, owner))
        try:
            return await self._refresh_holding_lease(seen, force)
        finally:
            heartbeat.cancel()
            await asyncio.to_thread(self._store.release_lease, key, owner)

    async def _keep_lease(self, key: str, owner: str) -> None:
        """Renew the lease while we work, so a slow store or file write cannot let it lapse between
        redeeming the refresh token and committing its successor. A killed process stops renewing."""
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                await asyncio.to_thread(self._store.acquire_lease, key, owner, self.lease_ttl)
            except PoolError as exc:
                log.warning("Could not renew the refresh lease: %s", exc)

    async def _refresh_holding_lease(self, seen: Account, force: bool) -> Account:
        current = await self._reread(seen)
        if self._settled(current, seen, force):
            return current
        if current.primary and self._sync is not None:
            current = await asyncio.to_thread(self._adopt, current)
            if self._settled(current, seen, force):
                return current
        try:
            tokens = await self._oauth.refresh(current.tokens.refresh_token)
        except PermanentRefreshError as exc:
            return await self._permanent(current, exc)
        except TransientRefreshError:
            self._note_failure(current.id)
            if not force and current.tokens.expires_at > self._clock():
                log.warning("Token refresh for %s failed; the current token stays in use", current.name)
                return current
            raise
        self._backoff.pop(current.id, None)
        return await asyncio.to_thread(self._commit, current, tokens)

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

    def _commit(self, current: Account, tokens: TokenSet) -> Account:
        """Store new tokens (compare-and-set on the refresh token we redeemed), then tidy up."""
        old = current.tokens.refresh_token
        if not self._store.update_tokens(current.id, tokens, expected_refresh_token=old):
            log.warning("Account %s changed during its token refresh; keeping the stored row", current.name)
        else:
            _, email, plan = identity_and_meta(tokens.id_token, tokens.access_token)
            if email or plan:
                self._store.update_meta(current.id, plan=plan, email=email)
            self._store.clear_usage(current.id)
        updated = self._store.get(current.id)
        if updated is None:
            raise TransientRefreshError(f"Account {current.name} was removed from the pool")
        if updated.primary and self._sync is not None and updated.tokens.refresh_token != old:
            try:
                self._sync.write_back(updated)
            except AuthFileError as exc:
                log.warning("%s", exc)
        log.info("Refreshed the tokens of %s", updated.name)
        return updated

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
