"""Token refresh under faults: once the token endpoint has answered, the new tokens are never
lost (another process holding the pool file's write lock, a slow endpoint); a call past its bound
and a lost lease behave as docs/reliability.md says; the proactive timer outlives an unexpected error.
Real loopback HTTP, real SQLite files, real lock-holding processes."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.fakes.auth_server import FakeAuth
from tests.fakes.locker import LockHolder
from tests.fakes.runner import ServerThread, serving
from tests.fakes.upstream import make_chatgpt
from tests.support.proxykit import DEFAULT_CONFIG, add_account, write_config
from tests.support.refreshkit import (
    add,
    live,
    refreshing,
    renewed,
    same,
    stored,
    until,
)
from tray.auth.files import PrimarySync, codex_auth_path
from tray.auth.refresh import Refresher
from tray.engine import Engine
from tray.errors import PermanentRefreshError, TransientRefreshError
from tray.models import Account, AccountState, Event
from tray.paths import resolve_paths
from tray.store.accounts import Store

# ---- a rotation, once answered, is never lost ----------------------------------------------------


def test_tokens_answered_while_another_process_holds_the_write_lock_are_used_then_stored(
    pool_home: Path, fake: FakeAuth, server: ServerThread
) -> None:
    store = Store.open(pool_home / "pool.db", time.time, busy_timeout=0.3)
    account = add(store, fake)  # the primary; its Codex auth file holds the same login
    path = codex_auth_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"auth_mode": "chatgpt", "tokens": {
        "access_token": account.tokens.access_token, "refresh_token": account.tokens.refresh_token,
        "id_token": account.tokens.id_token}}))
    holder = LockHolder(store.path, 2.0)  # held well past the busy timeout
    # The other process takes the lock as the token request arrives: the answer meets a locked file.
    fake.before_refresh = lambda: holder.take() and None

    async def scenario(refresher: Refresher) -> tuple[Account, Account, bool]:
        got = await refresher.ensure_fresh(account)  # the request that makes it refresh
        again = await refresher.ensure_fresh(account)  # another request meanwhile
        not_yet = not holder.released and not renewed(stored(store, account), account)
        await asyncio.to_thread(holder.close)
        await until(lambda: same(stored(store, account).tokens, got.tokens), "the tokens to be stored")
        return got, again, not_yet

    try:
        got, again, served_before_stored = refreshing(store, server.url, scenario,
                                                      sync=PrimarySync(store, time.time))
        assert served_before_stored  # both were answered while the file was locked, from memory
        assert renewed(got, account) and same(again.tokens, got.tokens)
        row = stored(store, account)
        assert row.state is AccountState.ENABLED and live(fake, row)
        written = json.loads(path.read_text())["tokens"]["refresh_token"] == got.tokens.refresh_token
        assert written  # the primary's Codex auth file got the new set after it was stored
        assert (fake.refresh_grants, fake.reuse_attempts) == (1, 0)
    finally:
        holder.close()
        store.close()


def test_a_due_but_valid_token_is_used_while_its_refresh_runs(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake, expires_in=3600, issued_ago=3500)  # inside the lead time, still valid
    fake.token_delay = 1.0

    async def scenario(refresher: Refresher) -> tuple[Account, bool]:
        got = await refresher.ensure_fresh(account)
        return got, renewed(stored(store, account), account)

    got, refreshed_first = refreshing(store, server.url, scenario)
    assert same(got.tokens, account.tokens) and not refreshed_first  # answered without waiting
    assert renewed(stored(store, account), account)  # then renewed
    assert (fake.refresh_grants, fake.reuse_attempts) == (1, 0)


def test_a_token_endpoint_slower_than_a_request_can_wait_still_stores_its_answer(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    # A request needing an expired account fails over quickly instead of waiting; the token call
    # goes on in the background (past the OAuth client's own 0.5 s), and its answer is stored.
    account = add(store, fake)
    fake.token_delay = 2.5

    async def scenario(refresher: Refresher) -> Account:
        with pytest.raises(TransientRefreshError, match="still under way"):
            await refresher.ensure_fresh(account)
        assert not renewed(stored(store, account), account)  # the call is still out there
        await until(lambda: renewed(stored(store, account), account), "the answer to be stored")
        return await refresher.ensure_fresh(account)

    fresh = refreshing(store, server.url, scenario, timeout=0.5, request_wait=0.2)
    assert same(fresh.tokens, stored(store, account).tokens) and live(fake, fresh)
    assert (fake.refresh_attempts, fake.refresh_grants, fake.reuse_attempts) == (1, 1, 0)


def test_a_token_call_past_its_bound_is_given_up_and_that_rotation_is_lost(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    # The one loss a bound allows: the server redeemed the token and had not answered when the
    # call was given up. The next refresh presents the spent token and the account needs a login.
    account = add(store, fake)
    fake.token_delay = 2.0
    assert refreshing(store, server.url, lambda r: r.refresh_due_accounts([account]), call_timeout=0.3) == 0
    assert stored(store, account).state is AccountState.ENABLED
    fake.token_delay = 0.0
    with pytest.raises(PermanentRefreshError, match="refresh_token_reused"):
        refreshing(store, server.url, lambda r: r.ensure_fresh(account))
    assert stored(store, account).state is AccountState.NEEDS_LOGIN
    assert (fake.refresh_grants, fake.lost_rotations) == (1, 1)


def test_a_5xx_after_redemption_loses_that_rotation_and_the_next_refresh_says_so(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    # The endpoint rotated the token, then failed to deliver: the new set never reached us. We
    # cannot tell this from a refusal, so the account stays enabled until the next refresh is told
    # refresh_token_reused; then it needs a login, said once.
    account = add(store, fake)
    fake.failures_after_redemption.append((502, {"error": "bad_gateway"}))
    assert refreshing(store, server.url, lambda r: r.refresh_due_accounts([account])) == 0
    assert stored(store, account).state is AccountState.ENABLED
    events: list[Event] = []
    with pytest.raises(PermanentRefreshError, match="refresh_token_reused"):
        refreshing(store, server.url, lambda r: r.ensure_fresh(account), events=events)
    row = stored(store, account)
    assert row.state is AccountState.NEEDS_LOGIN and len(events) == 1
    assert (fake.refresh_grants, fake.lost_rotations, fake.reuse_attempts) == (1, 1, 1)


# ---- a lost lease ---------------------------------------------------------------------------------


class StallingStore(Store):
    """The pool file as seen by a process that stalls (a laptop asleep, a stopped process) right
    after it re-reads the account under the refresh lease: the first ``get`` waits for ``resume``."""

    stalled: threading.Event
    resume: threading.Event

    def get(self, account_id: int) -> Account | None:
        if not self.stalled.is_set():
            self.stalled.set()
            self.resume.wait(30)
        return super().get(account_id)


def steal_lease(path: Path, account: Account) -> None:
    """Another process, its clock past the lease's end (as after a sleep), takes the refresh lease."""
    with Store.open(path, lambda: time.time() + 3600) as other:
        assert other.acquire_lease(f"refresh:{account.id}", "other-process", 30)


def test_a_lease_lost_before_the_token_call_never_presents_the_refresh_token(
    pool_home: Path, fake: FakeAuth, server: ServerThread
) -> None:
    sleepy = StallingStore.open(pool_home / "pool.db", time.time)
    sleepy.stalled, sleepy.resume = threading.Event(), threading.Event()
    sleepy.stalled.set()  # not yet: adding the account reads it back
    account = add(sleepy, fake)
    sleepy.stalled.clear()

    async def scenario(refresher: Refresher) -> None:
        job = asyncio.ensure_future(refresher.refresh_due_accounts([account]))
        await until(sleepy.stalled.is_set, "the refresher to stall under its lease")
        steal_lease(sleepy.path, account)
        sleepy.resume.set()
        assert await job == 0

    try:
        refreshing(sleepy, server.url, scenario)
        assert fake.refresh_attempts == 0  # the token was not presented by a process without the lease
        assert same(stored(sleepy, account).tokens, account.tokens) and live(fake, account)
    finally:
        sleepy.close()


def test_a_lease_lost_during_the_token_call_still_stores_the_answer(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    # Rule: once the token was presented, its answer is committed whether or not we still hold the
    # lease; the compare-and-set on the redeemed refresh token keeps it from overwriting another
    # process's commit.
    account = add(store, fake)
    fake.token_delay = 1.0

    async def scenario(refresher: Refresher) -> int:
        job = asyncio.ensure_future(refresher.refresh_due_accounts([account]))
        await until(lambda: fake.in_flight >= 1, "the token request to arrive")
        steal_lease(store.path, account)
        return await job

    assert refreshing(store, server.url, scenario, lease_ttl=0.6) == 1
    row = stored(store, account)
    assert renewed(row, account) and live(fake, row)
    assert (fake.refresh_grants, fake.reuse_attempts) == (1, 0)


def test_a_refusal_after_losing_the_lease_does_not_mark_the_account_needs_login(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    # We lost the lease while our request was on its way and the new holder redeemed first: our
    # answer is refresh_token_reused. Only the lease holder may judge the login; it has the new tokens.
    account = add(store, fake)
    fake.before_refresh = lambda: steal_lease(store.path, account)
    fake.refresh_failures.append((400, {"error": "refresh_token_reused"}))
    events: list[Event] = []
    with pytest.raises(TransientRefreshError):
        refreshing(store, server.url, lambda r: r.ensure_fresh(account), events=events)
    assert stored(store, account).state is AccountState.ENABLED and events == []


# ---- the proactive timer ---------------------------------------------------------------------------


def test_the_refresh_timer_survives_an_unexpected_error(
    pool_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chatgpt = make_chatgpt()
    auth = chatgpt.auth
    assert isinstance(auth, FakeAuth)
    with serving(chatgpt.app) as fake_server:
        write_config(pool_home, {**DEFAULT_CONFIG, "upstream-url": f"{fake_server.url}/backend-api",
                                 "auth-url": fake_server.url})
        engine = Engine(resolve_paths(), port=0, import_primary=False, refresh_interval=0.2)
        account = add_account(engine.store, auth, chatgpt.upstream, "a")
        # Another program leaves a value the store cannot read: reading the accounts fails with an
        # error that is no PoolError.
        with sqlite3.connect(engine.store.path) as conn:
            conn.execute("UPDATE accounts SET expires_at = 'soon'")
        conn.close()
        caplog.set_level(logging.WARNING, logger="tray")
        engine.start()
        try:
            logged = lambda: any("Proactive token refresh" in r.getMessage() for r in caplog.records)  # noqa: E731
            asyncio.run(until(logged, "the timer's failure to be logged"))
            with sqlite3.connect(engine.store.path) as conn:
                conn.execute("UPDATE accounts SET expires_at = ?", (time.time() - 10,))
            conn.close()
            asyncio.run(until(lambda: live(auth, stored(engine.store, account))
                              and auth.refresh_grants == 1, "the next pass to refresh the account"))
        finally:
            engine.stop()
