"""Storing a token set the token endpoint has answered, until it is stored.

Once the endpoint has answered, the refresh token we presented is spent: the new set exists only in
this process's memory. So a pool file that cannot take it right now (another process holds the
write lock past the busy timeout) is waited out, with backoff, instead of dropping the set. The
write is one transaction: compare-and-set on the redeemed refresh token (a row changed meanwhile by
another process or a re-login is kept as it is), the JWT's plan/email, and the quota cache cleared.
Only after that, the primary's Codex/opencode auth files get the new set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from typing import Protocol

from tray.auth.claims import identity_and_meta
from tray.auth.files import PrimarySync
from tray.errors import AuthFileError, StoreError, TransientRefreshError
from tray.models import Account, TokenSet

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 0.1, 2.0  # seconds between attempts while the pool file is busy


class TokenStore(Protocol):
    """The part of :class:`tray.store.accounts.Store` a commit uses."""

    def atomic(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
    def get(self, account_id: int) -> Account | None: ...
    def update_tokens(
        self, account_id: int, tokens: TokenSet, expected_refresh_token: str | None = ...
    ) -> bool: ...
    def update_meta(self, account_id: int, plan: str | None = ..., email: str | None = ...) -> None: ...
    def clear_usage(self, account_id: int) -> None: ...


async def commit_until_stored(
    store: TokenStore, sync: PrimarySync | None, current: Account, tokens: TokenSet
) -> Account:
    """Store ``tokens``, redeemed with ``current``'s refresh token, retrying while the pool file is
    busy; then write the primary's auth files. Returns the stored account."""
    delay, failures = RETRY_FIRST, 0
    while True:
        try:
            updated = await asyncio.to_thread(_commit, store, current, tokens)
            break
        except StoreError as exc:
            failures += 1
            if failures == 1:
                log.warning("New tokens for %s are kept in memory until the pool file takes them: %s",
                            current.name, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
    if failures:
        log.info("Stored the new tokens of %s after %d busy attempts", current.name, failures)
    if updated.primary and sync is not None and updated.tokens.refresh_token != current.tokens.refresh_token:
        try:
            await asyncio.to_thread(sync.write_back, updated)
        except AuthFileError as exc:
            log.warning("%s", exc)
    log.info("Refreshed the tokens of %s", updated.name)
    return updated


def _commit(store: TokenStore, current: Account, tokens: TokenSet) -> Account:
    with store.atomic():
        if store.update_tokens(current.id, tokens, expected_refresh_token=current.tokens.refresh_token):
            _, email, plan = identity_and_meta(tokens.id_token, tokens.access_token)
            if email or plan:
                store.update_meta(current.id, plan=plan, email=email)
            store.clear_usage(current.id)
        else:
            log.warning("Account %s changed during its token refresh; keeping the stored row", current.name)
        updated = store.get(current.id)
    if updated is None:
        raise TransientRefreshError(f"Account {current.name} was removed from the pool")
    return updated
