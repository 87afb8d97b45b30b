"""The soak run's CI version: 1,000 requests from 32 clients through two ``codex-pool serve``
processes sharing one pool, with upstream faults, token-endpoint faults, short-lived tokens, access
tokens rejected upstream now and then, one login revoked for good, a slow and sometimes failing
usage endpoint, and a third process taking the pool file's write lock at random moments. The long
version is ``python tests/support/soak.py --requests 10000`` (figures in docs/reliability.md)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth
from tests.fakes.locker import LONG
from tests.fakes.upstream import replies
from tests.support.proxykit import running_pool
from tests.support.soak import find_tokens, run_soak
from tests.support.soakchaos import lock_holder
from tests.support.soakload import classify
from tests.support.soakreport import GOOD, STALL_LIMIT, SoakSettings
from tray.models import TokenSet


@pytest.mark.timeout(900)
def test_thousand_requests_under_faults_over_two_processes(
    pool_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_soak(SoakSettings(requests=1000), pool_home)
    with capsys.disabled():
        print("\n" + "\n".join(f"  soak: {line}" for line in report.lines()))
    # The faults really happened: upstream, token endpoint, usage endpoint and the write lock.
    assert report.outcomes["dropped"] > 0 and sum(report.faults.values()) > 50
    assert report.refresh_grants > 0 and report.transient_token_failures > 0
    assert report.usage_calls > 0 and report.usage_faults.get("slow_fail", 0) > 0
    assert len(report.lock_holds) >= 2 and max(report.lock_holds) > 5.0
    # Every request got an answer a client can act on, promptly, and no stream froze in flight.
    assert sum(report.outcomes.values()) == 1000
    assert set(report.outcomes) <= set(GOOD), report.examples
    # The rest: passed-on drops, a few clear errors and "pool exhausted" 429s with Retry-After. Their
    # number is chance: each injected 5xx, drop or HTML 403 rests its account 15-30 s and each 429 a
    # while, some 80 of them a minute over 7 usable accounts, so how often all seven rest at once
    # depends on how they line up (93-246 pooled 429s in runs of this same plan). Most requests are
    # still served.
    pooled = report.outcomes.get("pooled_429", 0)
    assert report.outcomes["completed"] + pooled > 900 and report.outcomes["completed"] > 650
    assert report.longest_stall <= STALL_LIMIT
    # The logins survived: no token presented twice, only the revoked account needs a login.
    assert report.reuse_attempts == 0
    assert report.logins_lost == 0
    assert report.needs_login == [report.revoked]
    assert report.accounts_after == report.accounts_before == 8
    assert report.dead_logins == []
    # Nothing left behind, nothing leaked.
    assert report.upstream_open_streams == 0
    assert report.leaks == []
    assert report.problems == []


def test_the_leak_search_finds_tokens_and_jwt_bodies() -> None:
    jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLWEiLCJleHAiOjF9."
    texts = {"log": f"... Bearer {jwt} ...", "cut": f"token {jwt.rsplit('.', 1)[0]}", "clean": "nothing here"}
    assert find_tokens({jwt, "rt_1_abcdefghijklmnop"}, texts) == ["log", "cut"]
    assert find_tokens({"rt_1_abcdefghijklmnop"}, {"x": "refresh rt_1_abcdefghijklmnop"}) == ["x"]


def test_a_stream_that_ends_cleanly_without_completion_is_caught() -> None:
    created = b'event: response.created\ndata: {"type":"response.created"}\n\n'
    done = b'event: response.completed\ndata: {"type":"response.completed"}\n\n'
    headers = httpx.Headers()
    assert classify(200, created + done, False, headers) == "completed"
    assert classify(200, created, True, headers) == "dropped"
    assert classify(200, created, False, headers) == "truncated_as_complete"
    assert classify(429, b'{"error":{"code":"pool_exhausted"}}', False, httpx.Headers({"retry-after": "3"})) \
        == "pooled_429"
    assert classify(500, b'{"error":{}}', False, headers) == "status_500"
    assert classify(502, b"<html>", False, headers) == "non_json_502"


def test_a_pooled_429_always_says_when_to_retry(pool_home: Path) -> None:
    # Found by the soak ("pooled_429_no_reset"): 'a' answers 429 with a 1 s reset and 'b' needs a
    # token refresh that fails after 1.5 s; by the time the pooled 429 is built, 'a' may serve again.
    # The client must still be told when to retry, not left without Retry-After.
    with running_pool(["a", "b"]) as pool:
        auth = pool.auth
        assert isinstance(auth, FakeAuth)
        with pool.engine.store.atomic():
            b = pool.account("b")
            expired = TokenSet(b.tokens.access_token, b.tokens.refresh_token, b.tokens.id_token, 0.0)
            pool.engine.store.update_tokens(b.id, expired)
        pool.upstream.script("a", replies.usage_limit(resets_in=1, exhaust=False))
        auth.token_delay = 1.5
        auth.refresh_failures.append((503, {"error": "temporarily_unavailable"}))
        answer = pool.post()
        assert answer.status_code == 429, answer.text
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.json()["error"]["code"] == "pool_exhausted"


def test_the_lock_holder_blocks_writers_and_changes_nothing(tmp_path: Path) -> None:
    """The soak's third process really holds the write lock: a writer with a short busy timeout
    is refused meanwhile; readers go on; the file is unchanged after."""
    db = tmp_path / "pool.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (v INTEGER)")
        setup.execute("INSERT INTO t VALUES (1)")
    holds: list[float] = []
    settings = SoakSettings(seed=1, lock_span=(1.0, 1.0), lock_gap=(0.1, 0.1))
    writer = sqlite3.connect(db, timeout=0.05, isolation_level=None)
    refused = 0
    try:
        with lock_holder(db, settings, holds):
            deadline = time.monotonic() + 30
            while (not refused or len(holds) < 2) and time.monotonic() < deadline:
                try:
                    writer.execute("BEGIN IMMEDIATE")
                    writer.execute("ROLLBACK")
                except sqlite3.OperationalError as exc:
                    assert "locked" in str(exc)
                    assert writer.execute("SELECT v FROM t").fetchall() == [(1,)]  # reads go on
                    refused += 1
                time.sleep(0.02)
    finally:
        writer.close()
    assert refused > 0 and len(holds) >= 2
    assert holds[1] >= LONG  # every third hold outlasts the proxy's 5 s busy timeout
    with closing(sqlite3.connect(db)) as after:
        assert after.execute("SELECT v FROM t").fetchall() == [(1,)]
