"""Token refresh: the lease protocol, re-reading, compare-and-set, the primary's auth files, and
two processes sharing one pool file. Fault cases (a locked pool file, a slow or lost answer, a lost
lease, the timer) are in test_refresh_faults.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import ServerThread
from tests.support.refreshkit import (
    ALICE,
    BOB,
    add,
    live,
    refreshing,
    same,
    stored,
    worker,
    write_codex_file,
)
from tray.auth.files import PrimarySync, codex_auth_path
from tray.auth.refresh import Refresher, refresh_due
from tray.errors import PermanentRefreshError, TransientRefreshError
from tray.models import Account, AccountState, Event, Identity, NeedsLogin
from tray.store.accounts import Store


def test_fresh_token_is_left_alone(store: Store, fake: FakeAuth, server: ServerThread) -> None:
    account = add(store, fake, expires_in=3600)
    assert refreshing(store, server.url, lambda r: r.ensure_fresh(account)) == account
    assert fake.refresh_attempts == 0


def test_expired_token_is_refreshed_stored_and_quota_cache_cleared(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake)
    store.put_usage(account.id, "{}", time.time())
    fresh = refreshing(store, server.url, lambda r: r.ensure_fresh(account))
    assert fresh.tokens.access_token != account.tokens.access_token
    assert fresh.tokens.expires_at > time.time() + 3000
    assert same(stored(store, account).tokens, fresh.tokens)
    assert store.usage(account.id) is None
    assert fake.refresh_grants == 1


def test_lead_time_is_five_minutes_but_at_most_half_the_lifetime(store: Store, fake: FakeAuth) -> None:
    hour = add(store, fake, ALICE, expires_in=3600)
    exp = hour.tokens.expires_at
    assert not refresh_due(hour, exp - 301)
    assert refresh_due(hour, exp - 299)
    minute = add(store, fake, BOB, expires_in=60)
    exp = minute.tokens.expires_at
    assert not refresh_due(minute, exp - 31)
    assert refresh_due(minute, exp - 29)


def test_concurrent_callers_share_one_refresh(store: Store, fake: FakeAuth, server: ServerThread) -> None:
    account = add(store, fake)
    fake.token_delay = 0.3

    async def many(refresher: Refresher) -> list[Account]:
        return await asyncio.gather(*(refresher.ensure_fresh(account) for _ in range(10)))

    results = refreshing(store, server.url, many)
    assert len({a.tokens.access_token for a in results}) == 1
    assert (fake.refresh_grants, fake.reuse_attempts) == (1, 0)


def test_a_stale_caller_reuses_the_stored_refresh(store: Store, fake: FakeAuth, server: ServerThread) -> None:
    account = add(store, fake)

    async def twice(refresher: Refresher) -> tuple[Account, Account, Account]:
        first = await refresher.ensure_fresh(account)
        again = await refresher.ensure_fresh(account)  # still holds the old, expired row
        after_401 = await refresher.ensure_fresh(account, force=True)  # 401 on the old access token
        return first, again, after_401

    first, again, after_401 = refreshing(store, server.url, twice)
    assert first.tokens.access_token == again.tokens.access_token == after_401.tokens.access_token
    assert (fake.refresh_grants, fake.reuse_attempts) == (1, 0)


def test_force_refreshes_a_current_token_after_a_401(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake, expires_in=3600)
    fresh = refreshing(store, server.url, lambda r: r.ensure_fresh(account, force=True))
    assert fresh.tokens.access_token != account.tokens.access_token
    assert fake.refresh_grants == 1


def test_waiter_uses_tokens_committed_by_the_lease_holder(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake)
    store.acquire_lease(f"refresh:{account.id}", "other-process", 30)

    async def wait_then_other_commits(refresher: Refresher) -> Account:
        waiting = asyncio.ensure_future(refresher.ensure_fresh(account))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # nobody refreshes without the lease
        tokens = fake.token_set(ALICE)
        store.update_tokens(account.id, tokens, expected_refresh_token=account.tokens.refresh_token)
        store.release_lease(f"refresh:{account.id}", "other-process")
        return await waiting

    fresh = refreshing(store, server.url, wait_then_other_commits)
    assert fresh.tokens.access_token != account.tokens.access_token
    assert fake.refresh_attempts == 0


def test_permanent_failure_marks_needs_login_once(store: Store, fake: FakeAuth, server: ServerThread) -> None:
    account = add(store, fake)
    fake.revoke(account.tokens.refresh_token)
    events: list[Event] = []

    async def many(refresher: Refresher) -> list[Any]:
        return await asyncio.gather(
            *(refresher.ensure_fresh(account) for _ in range(5)), return_exceptions=True
        )

    results = refreshing(store, server.url, many, events=events)
    assert all(isinstance(r, PermanentRefreshError) and r.code == "invalid_grant" for r in results)
    with pytest.raises(PermanentRefreshError):
        refreshing(store, server.url, lambda r: r.ensure_fresh(account), events=events)
    stored = store.get(account.id)
    assert stored is not None and stored.state is AccountState.NEEDS_LOGIN
    assert stored.state_reason is not None and "invalid_grant" in stored.state_reason
    assert events == [NeedsLogin(account.id, "alice@example.com", stored.state_reason)]
    assert fake.refresh_attempts == 1
    assert account.tokens.refresh_token not in stored.state_reason


def test_transient_failure_keeps_a_valid_token_and_backs_off(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake, expires_in=3600, issued_ago=3500)  # inside the lead time, still valid
    fake.fail_all_refreshes = (503, {"error": "unavailable"})

    async def twice(refresher: Refresher) -> tuple[Account, Account]:
        return await refresher.ensure_fresh(account), await refresher.ensure_fresh(account)

    first, second = refreshing(store, server.url, twice)
    assert first.tokens == second.tokens == account.tokens
    assert fake.refresh_attempts == 1  # the second call waited for the backoff instead
    stored = store.get(account.id)
    assert stored is not None and stored.state is AccountState.ENABLED


def test_transient_failure_without_a_valid_token_raises(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake)
    fake.fail_all_refreshes = (500, {"error": "boom"})  # refused before redemption: the token stays live
    with pytest.raises(TransientRefreshError):
        refreshing(store, server.url, lambda r: r.ensure_fresh(account))
    assert stored(store, account).state is AccountState.ENABLED
    assert account.tokens.refresh_token in fake.live


def test_primary_adopts_newer_file_tokens_instead_of_refreshing(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake)
    assert account.primary
    _, theirs = write_codex_file(fake, ALICE, 3600)
    sync = PrimarySync(store, time.time)
    fresh = refreshing(store, server.url, lambda r: r.ensure_fresh(account), sync=sync)
    assert fresh.tokens.refresh_token == theirs.refresh_token
    assert fake.refresh_attempts == 0


def test_primary_refresh_is_written_back(store: Store, fake: FakeAuth, server: ServerThread) -> None:
    account = add(store, fake)
    path = codex_auth_path()
    path.parent.mkdir(parents=True)
    body = {
        "auth_mode": "chatgpt",
        "tokens": {
            "access_token": account.tokens.access_token,
            "refresh_token": account.tokens.refresh_token,
            "id_token": account.tokens.id_token,
        },
    }
    path.write_text(json.dumps(body))
    fresh = refreshing(
        store, server.url, lambda r: r.ensure_fresh(account), sync=PrimarySync(store, time.time)
    )
    written = json.loads(path.read_text())["tokens"]
    assert written["refresh_token"] == fresh.tokens.refresh_token != account.tokens.refresh_token
    assert account.tokens.refresh_token in fake.consumed  # the consumed token is gone from the file


def test_primary_reuse_error_recovers_from_the_file(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake, expires_in=-10)
    # Codex CLI redeems our refresh token just before we do and writes its new set to auth.json.
    fake.before_refresh = lambda: write_codex_file(fake, ALICE, 3600) and None
    fake.refresh_failures.append((400, {"error": "refresh_token_reused"}))
    events: list[Event] = []
    sync = PrimarySync(store, time.time)
    fresh = refreshing(store, server.url, lambda r: r.ensure_fresh(account), sync=sync, events=events)
    stored = store.get(account.id)
    assert stored is not None and stored.state is AccountState.ENABLED and events == []
    assert fresh.tokens.expires_at > time.time() + 3000


def test_two_processes_ten_callers_each_refresh_exactly_once(
    store: Store, fake: FakeAuth, server: ServerThread, tmp_path: Path
) -> None:
    account = add(store, fake)
    fake.token_delay = 0.2  # keep the grant in flight while the other process arrives
    go = tmp_path / "go"
    procs = [worker(store.path, server.url, account.id, 10, go) for _ in range(2)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        results += json.loads(out.strip().splitlines()[-1])
    stored = store.get(account.id)
    assert stored is not None
    expected = hashlib.sha256(stored.tokens.access_token.encode()).hexdigest()[:16]
    assert results == [expected] * 20
    assert (fake.refresh_grants, fake.reuse_attempts) == (1, 0)


def test_kill_9_while_holding_the_lease_recovers(
    store: Store, fake: FakeAuth, server: ServerThread, tmp_path: Path
) -> None:
    # The killed process's token request never reached the token endpoint (it went into a
    # connection nobody reads), so its refresh token is still live; the next process takes the
    # lease over once it lapses. (A request that did reach the endpoint was redeemed there: that
    # rotation is lost with the process, see test_crash.py.)
    account = add(store, fake)
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(1)
    hole.settimeout(30)
    go = tmp_path / "go"
    go.touch()
    url = f"http://127.0.0.1:{hole.getsockname()[1]}"
    proc = worker(store.path, url, account.id, 1, go, WORKER_TOKEN_TIMEOUT="30", WORKER_LEASE_TTL="3")
    try:
        conn, _ = hole.accept()  # the worker holds the lease and is sending its token request
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        conn.close()
    finally:
        hole.close()
        assert proc.stdout is not None
        proc.stdout.close()
    assert refreshing(store, server.url, lambda r: r.refresh_due_accounts([account])) == 1
    fresh = stored(store, account)
    assert fresh.tokens.expires_at > time.time() + 3000
    assert (fake.refresh_attempts, fake.refresh_grants, fake.reuse_attempts) == (1, 1, 0)
    assert live(fake, fresh)


def test_account_removed_meanwhile_is_a_transient_error(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake)
    store.remove(account.id)
    with pytest.raises(TransientRefreshError, match="removed"):
        refreshing(store, server.url, lambda r: r.ensure_fresh(account))
    assert fake.refresh_attempts == 0


def test_relogin_during_a_failing_refresh_keeps_the_new_login(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    account = add(store, fake)
    fake.revoke(account.tokens.refresh_token)
    identity = Identity(ALICE.account_id, ALICE.subject)
    # the user signs in again while our refresh of the dead token is on its way
    fake.before_refresh = lambda: (
        store.save_login(identity, fake.token_set(ALICE), ALICE.email, ALICE.plan) and None
    )
    events: list[Event] = []
    fresh = refreshing(store, server.url, lambda r: r.ensure_fresh(account), events=events)
    stored = store.get(account.id)
    assert stored is not None and stored.state is AccountState.ENABLED and events == []
    assert fresh.tokens.expires_at > time.time() + 3000


def test_a_forced_refresh_joining_a_failed_proactive_one_does_not_return_the_rejected_token(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    # Found by the soak (tests/support/soak.py): a request's proactive refresh is in flight when another
    # request on the same account gets a 401; the proactive one fails transiently and keeps the
    # still-unexpired token. The 401 caller must not be handed that token back: retrying with it
    # gets a second 401 and the account would be marked needs login for a passing hiccup.
    account = add(store, fake, expires_in=3600, issued_ago=3500)  # due, still valid by its expiry
    fake.token_delay = 0.3
    fake.fail_all_refreshes = (503, {"error": "unavailable"})

    async def both(refresher: Refresher) -> tuple[Account, BaseException | Account]:
        proactive = asyncio.ensure_future(refresher.ensure_fresh(account))
        await asyncio.sleep(0.1)
        forced = await asyncio.gather(refresher.ensure_fresh(account, force=True), return_exceptions=True)
        return await proactive, forced[0]

    proactive, forced = refreshing(store, server.url, both)
    assert proactive.tokens == account.tokens  # a failed proactive refresh keeps a valid token
    assert isinstance(forced, TransientRefreshError)
    stored = store.get(account.id)
    assert stored is not None and stored.state is AccountState.ENABLED


def test_the_timer_pass_refreshes_what_is_due_and_swallows_failures(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    carol = FakeUser("acc-c", "carol", "carol@example.com", "plus")
    due = add(store, fake, ALICE, expires_in=3600, issued_ago=3500)
    revoked = add(store, fake, BOB)
    fresh = add(store, fake, carol, expires_in=3600)
    fake.revoke(revoked.tokens.refresh_token)
    events: list[Event] = []
    refreshed = refreshing(store, server.url, lambda r: r.refresh_due_accounts([due, revoked, fresh]),
                           events=events)
    assert refreshed == 1 and fake.refresh_grants == 1
    stored = {a.id: a for a in store.accounts()}
    assert stored[due.id].tokens.access_token != due.tokens.access_token
    assert stored[revoked.id].state is AccountState.NEEDS_LOGIN  # marked by the refresher, not raised
    assert [e.account_id for e in events if isinstance(e, NeedsLogin)] == [revoked.id]
    assert stored[fresh.id].tokens == fresh.tokens
