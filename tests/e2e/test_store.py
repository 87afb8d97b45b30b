"""End to end: local limits met while a request is failing over. The pool file's write lock held by
another process, so a store write the attempt needs (the 429's quota update, the refresh lease)
cannot finish: the attempt fails over like a transport error instead of ending the request. The
proxy's own upstream connection pool full: a retry-later answer that blames no account."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx
import pytest

from tests.fakes.auth_server import FakeUser
from tests.fakes.locker import write_lock
from tests.support.proxykit import Pool, codex_body, replies, running_pool


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def warm(pool: Pool) -> None:
    """One answer first, so the quota cache is filled and nothing else needs a write."""
    assert pool.post().status_code == 200
    pool.wait_bookkeeping()


def test_a_429_whose_quota_update_hits_the_lock_fails_over(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tray")
    with running_pool(["a", "b"]) as pool:
        warm(pool)
        pool.upstream.script("a", replies.usage_limit(resets_in=600))
        asked = len(pool.upstream.codex_requests("a"))
        with write_lock(pool.engine.paths.db_file):
            response = pool.post()
        assert response.status_code == 200, response.text
        assert pool.served_by(response) == "b"
        assert len(pool.upstream.codex_requests("a")) == asked + 1  # a was tried first and said 429
        # The quota update and the cooldown go through the background batch, which waited for the
        # lock instead of the request: once the lock is gone, a's cooldown is stored.
        until = pool.cooldown_until("a")
        assert until is not None and until > time.time() + 500


def test_a_refresh_lease_that_hits_the_lock_fails_over(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tray")
    with running_pool(["a", "b"]) as pool:
        warm(pool)
        # a's access token has just expired (a live refresh token with it): the next request that
        # ranks a first must refresh it, and the refresh lease is a store write.
        user = FakeUser(account_id="a", subject="user-a", email="a@example.com")
        pool.engine.store.update_tokens(pool.accounts["a"].id, pool.auth.token_set(user, expires_in=-10))
        before = len(pool.upstream.codex_requests("a"))
        with write_lock(pool.engine.paths.db_file):
            response = pool.post()
        assert response.status_code == 200, response.text
        assert pool.served_by(response) == "b"
        assert len(pool.upstream.codex_requests("a")) == before
        # The refresh waited on the lock in the background (a request waits at most the refresher's
        # request_wait for it) and b served meanwhile.
        # Once the lock is gone the account refreshes and serves again: it was not blamed.
        assert pool.cooldown_until("a") is None and pool.account("a").state.value == "enabled"
        pool.upstream.script("b", replies.server_error(500))
        again = pool.post()
        assert again.status_code == 200 and pool.served_by(again) == "a"


def test_a_full_local_connection_pool_answers_503_and_cools_no_account() -> None:
    """The proxy's own connection limit is reached (one connection here, held by a long answer): the
    next request is told to retry shortly, and no account is blamed for it."""
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
    timeout = httpx.Timeout(30.0, pool=2.0)  # long enough that the warm-up never waits it out
    with running_pool(["a", "b"], transport=transport, upstream_timeout=timeout) as pool:
        warm(pool)
        pool.upstream.script("a", replies.ok(deltas=400, event_delay=0.05))
        with pool.client() as client, client.stream("POST", "/backend-api/codex/responses",
                                                    json=codex_body()) as long_answer:
            assert long_answer.status_code == 200
            wait_for(lambda: pool.upstream.open_streams == 1, "the long answer to hold the connection")
            response = pool.post()
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "connection_limit"
        assert int(response.headers["retry-after"]) >= 1
        assert pool.cooldown_until("a") is None and pool.cooldown_until("b") is None
        assert pool.post().status_code == 200  # the connection is free again
