"""The soak run's CI version: 1,000 requests from 32 clients through two ``codex-pool serve``
processes sharing one pool, with upstream faults, token-endpoint faults, short-lived tokens, access
tokens rejected upstream now and then and one login revoked for good. The long version is
``python tests/soak.py --requests 10000`` (figures in docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth
from tests.fakes.upstream import replies
from tests.proxykit import running_pool
from tests.soak import GOOD, SoakSettings, classify, find_tokens, run_soak
from tray.models import TokenSet


def test_thousand_requests_under_faults_over_two_processes(
    pool_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_soak(SoakSettings(requests=1000), pool_home)
    with capsys.disabled():
        print("\n" + "\n".join(f"  soak: {line}" for line in report.lines()))
    # Every request got an answer a client can act on; the faults really happened.
    assert sum(report.outcomes.values()) == 1000
    assert set(report.outcomes) <= set(GOOD), report.examples
    assert report.outcomes["completed"] > 500  # the rest: passed-on drops and clear errors (pooled 429s)
    assert report.outcomes["dropped"] > 0 and sum(report.faults.values()) > 50
    assert report.refresh_grants > 0 and report.transient_token_failures > 0
    # The logins survived: no token presented twice, only the revoked account needs a login.
    assert report.reuse_attempts == 0
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
