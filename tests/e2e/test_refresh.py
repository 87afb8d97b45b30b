"""Token refresh through a running proxy: an answered rotation is never lost (pool file locked by
another process, the proxy stopping, the client gone) and a slow token endpoint does not hold
requests up. Real engine, real loopback HTTP, real SQLite files and a real lock-holding process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import httpx

from tests.fakes.locker import LockHolder
from tests.support.proxykit import CODEX_HEADERS, Pool, codex_body, running_pool
from tray.models import Account, AccountState, TokenSet
from tray.store.accounts import Store


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def expire(pool: Pool, fake_id: str) -> Account:
    """Mark the stored access token of ``fake_id`` as expired, so it must be refreshed first."""
    account = pool.account(fake_id)
    tokens = account.tokens
    pool.engine.store.update_tokens(account.id, TokenSet(tokens.access_token, tokens.refresh_token,
                                                         tokens.id_token, 0.0))
    return pool.account(fake_id)


def renewed(pool: Pool, before: Account) -> bool:
    return pool.account("a").tokens.refresh_token != before.tokens.refresh_token


def live(pool: Pool, fake_id: str) -> bool:
    """Whether the stored refresh token would still be honoured by the token endpoint."""
    return pool.account(fake_id).tokens.refresh_token in pool.auth.live


def test_a_rotation_answered_while_another_process_holds_the_write_lock_is_used_and_stored() -> None:
    with running_pool(["a"]) as pool:
        old = expire(pool, "a")
        holder = LockHolder(pool.engine.store.path, 8.0)  # past the 5 s busy timeout
        # The lock is taken the moment the token request arrives, so the answer meets a locked file.
        pool.auth.before_refresh = lambda: holder.take() and None
        try:
            answers = [pool.post()]  # this request makes the proxy refresh
            while not holder.released:
                answers.append(pool.post())
            during = [a.status_code for a in answers]
        finally:
            holder.close()
        wait_for(lambda: renewed(pool, old), "the new tokens to be stored")
        after = [pool.post().status_code for _ in range(3)]
        assert during == [200] * len(during) and len(during) >= 3, during
        assert after == [200] * 3
        assert pool.account("a").state is AccountState.ENABLED and live(pool, "a")
        assert (pool.auth.refresh_grants, pool.auth.reuse_attempts) == (1, 0)


def test_a_slow_token_endpoint_sends_requests_to_another_account_meanwhile() -> None:
    with running_pool(["a", "b"]) as pool:
        old = expire(pool, "a")
        pool.auth.token_delay = 8.0  # far past the moment a request stops waiting for it
        first = pool.post()
        assert first.status_code == 200 and pool.served_by(first) == "b"
        assert not renewed(pool, old)  # 'a' is still being refreshed
        wait_for(lambda: renewed(pool, old), "the slow answer to be stored")
        pool.engine.store.set_state(pool.accounts["b"].id, AccountState.DISABLED)
        assert pool.served_by(pool.post()) == "a"  # usable again once stored
        assert live(pool, "a") and (pool.auth.refresh_grants, pool.auth.reuse_attempts) == (1, 0)


def test_stopping_the_proxy_waits_for_an_answered_refresh_to_be_stored() -> None:
    with running_pool(["a"]) as pool:
        old = expire(pool, "a")
        pool.auth.token_delay = 7.0  # longer than the proxy waits for requests in flight when stopping
        client = threading.Thread(target=pool.post)  # makes the proxy refresh
        client.start()
        wait_for(lambda: pool.auth.in_flight >= 1, "the token request to arrive")
        pool.engine.stop()  # while the token endpoint has redeemed and not yet answered
        client.join(30)
        with Store.open(pool.engine.store.path) as store:  # the engine's own is closed now
            row = store.get(old.id)
        kept = row is not None and row.tokens.refresh_token != old.tokens.refresh_token
        assert kept and row is not None and row.tokens.refresh_token in pool.auth.live
        assert (pool.auth.refresh_grants, pool.auth.reuse_attempts) == (1, 0)


def test_a_token_answer_slower_than_the_stop_grace_for_requests_is_still_stored() -> None:
    """Stopping gives requests in flight a short grace and then closes them, but the shutdown still
    waits for the token endpoint's answer (up to the token call's bound) before the pool file closes."""
    with running_pool(["a"], stop_timeout=0.5) as pool:
        old = expire(pool, "a")
        pool.auth.token_delay = 3.0  # longer than both request grace periods of stopping together
        client = threading.Thread(target=pool.post)
        client.start()
        wait_for(lambda: pool.auth.in_flight >= 1, "the token request to arrive")
        pool.engine.stop()
        client.join(30)
        with Store.open(pool.engine.store.path) as store:
            row = store.get(old.id)
        # Booleans, so a failure never prints a token.
        renewed_and_live = (row is not None and row.tokens.refresh_token != old.tokens.refresh_token
                            and row.tokens.refresh_token in pool.auth.live)
        assert renewed_and_live, "the answered rotation was not stored before the pool file closed"
        assert (pool.auth.refresh_grants, pool.auth.reuse_attempts) == (1, 0)


def test_a_client_that_hangs_up_does_not_cancel_the_refresh_it_started() -> None:
    with running_pool(["a"]) as pool:
        old = expire(pool, "a")
        pool.auth.token_delay = 1.5
        headers = {**CODEX_HEADERS, "Authorization": f"Bearer {pool.engine.api_key}"}
        with httpx.Client(base_url=pool.url, headers=headers, timeout=0.5, trust_env=False) as client, \
                contextlib.suppress(httpx.TimeoutException):  # gone before the answer
            client.post("/backend-api/codex/responses", json=codex_body())
        wait_for(lambda: renewed(pool, old), "the refresh to be stored")
        assert pool.post().status_code == 200
        assert live(pool, "a") and (pool.auth.refresh_grants, pool.auth.reuse_attempts) == (1, 0)
