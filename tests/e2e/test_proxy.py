"""End to end over real sockets: client → codex-pool proxy (real uvicorn) → fake chatgpt.com.
Routing, header forwarding, turn state, refresh on 401 and durable 401."""

from __future__ import annotations

import time

from tests.support.proxykit import CODEX_HEADERS, codex_body, replies, running_pool, sse_types
from tray.models import AccountState, Cooldown, NeedsLogin


def test_request_goes_to_the_healthiest_account_with_its_credentials() -> None:
    usage = {"a": {"primary_used": 90.0, "primary_reset_after_s": 9000},
             "b": {"primary_used": 10.0, "primary_reset_after_s": 9000}}
    with running_pool(["a", "b"], usage=usage) as pool:
        pool.upstream.usage_of("a")
        # Warm the cache: the first request may route by priority while usage loads.
        for _ in range(3):
            response = pool.post()
            assert response.status_code == 200
        assert pool.served_by(response) == "b"
        assert "response.completed" in sse_types(response)
        assert "Hi from b!" in response.text
        last = pool.upstream.codex_requests()[-1]
        assert last.account_id == "b"
        assert last.headers["chatgpt-account-id"] == "b"


def test_client_headers_are_forwarded_and_credentials_replaced() -> None:
    with running_pool(["a"]) as pool:
        extra = {"session-id": "s-1", "thread-id": "t-1", "x-codex-turn-metadata": '{"turn_id":"x"}',
                 "openai-beta": "responses=experimental", "chatgpt-account-id": "someone-else",
                 "cookie": "local=1"}
        response = pool.post(headers=extra)
        assert response.status_code == 200
        seen = pool.upstream.codex_requests("a")[-1].headers
        for name, value in {**CODEX_HEADERS, **extra}.items():
            if name in ("chatgpt-account-id", "cookie"):
                continue
            assert seen[name] == value, name
        assert seen["chatgpt-account-id"] == "a"
        assert seen["authorization"] == f"Bearer {pool.account('a').tokens.access_token}"
        assert pool.engine.api_key not in str(seen)
        assert "cookie" not in seen


def test_headers_the_client_names_in_connection_are_not_forwarded() -> None:
    with running_pool(["a"]) as pool:
        hop = {"Connection": "keep-alive, X-Local-Hop, x-other-hop", "X-Local-Hop": "1", "x-other-hop": "2",
               "x-kept": "3"}
        assert pool.post(headers=hop).status_code == 200
        seen = pool.upstream.codex_requests("a")[-1].headers
        assert "x-local-hop" not in seen and "x-other-hop" not in seen
        assert seen["x-kept"] == "3"


def test_turn_state_goes_only_to_the_account_that_issued_it() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.ok(turn_state="ts-from-a"))
        first = pool.post()
        assert first.headers["x-codex-turn-state"] == "ts-from-a"
        pool.wait_bookkeeping()
        # Same turn, same account: forwarded.
        pool.post(headers={"x-codex-turn-state": "ts-from-a"})
        assert pool.upstream.codex_requests("a")[-1].headers.get("x-codex-turn-state") == "ts-from-a"
        # The issuing account now fails: the retry on b must not carry a's turn state.
        pool.upstream.script("a", replies.usage_limit(resets_in=600))
        switched = pool.post(headers={"x-codex-turn-state": "ts-from-a"})
        assert pool.served_by(switched) == "b"
        assert "x-codex-turn-state" not in pool.upstream.codex_requests("b")[-1].headers
        # A turn state nobody here issued is never forwarded.
        pool.post(headers={"x-codex-turn-state": "unknown"})
        assert all(r.headers.get("x-codex-turn-state") != "unknown" for r in pool.upstream.codex_requests())


def test_401_refreshes_the_token_and_retries_once() -> None:
    with running_pool(["a", "b"]) as pool:
        old_token = pool.account("a").tokens.access_token
        pool.upstream.script("a", replies.unauthorized())
        response = pool.post()
        assert response.status_code == 200
        assert pool.served_by(response) == "a"
        assert pool.auth.refresh_grants == 1
        new_token = pool.account("a").tokens.access_token
        assert new_token != old_token
        assert pool.upstream.codex_requests("a")[-1].token == new_token
        assert pool.account("a").state is AccountState.ENABLED


def test_durable_401_marks_needs_login_and_fails_over() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.unauthorized(), replies.unauthorized())
        response = pool.post()
        assert response.status_code == 200
        assert pool.served_by(response) == "b"
        assert pool.account("a").state is AccountState.NEEDS_LOGIN
        assert any(isinstance(e, NeedsLogin) and e.account_id == pool.accounts["a"].id for e in pool.events)
        # Out of routing from now on.
        assert pool.served_by(pool.post()) == "b"
        assert len(pool.upstream.codex_requests("a")) == 2


def test_sticky_session_stays_on_its_account() -> None:
    usage = {"a": {"primary_used": 30.0, "primary_reset_after_s": 9000},
             "b": {"primary_used": 28.0, "primary_reset_after_s": 9000}}
    with running_pool(["a", "b"], usage=usage, config={"sticky-mode": "always"}) as pool:
        for _ in range(2):
            pool.post()  # warm
        pool.wait_bookkeeping()
        first = pool.served_by(pool.post(headers={"session-id": "conv-1"}))
        pool.wait_bookkeeping()
        other = "a" if first == "b" else "b"
        # Make the other account look much better; "always" keeps the session where it is.
        pool.upstream.set_usage(other, primary_used=0.0, primary_reset_after_s=100)
        for _ in range(3):
            assert pool.served_by(pool.post(headers={"session-id": "conv-1"})) == first
        body = codex_body(prompt_cache_key="conv-2")
        assert pool.post(body=body).status_code == 200
        pool.wait_bookkeeping()
        assert pool.engine.store.decisions(5)[0].reason


def test_dormant_window_gets_one_touch_then_normal_ranking() -> None:
    # b's windows are untouched (0 % used, timer not started): it is promoted once to start them.
    usage = {"a": {"primary_used": 20.0, "primary_reset_after_s": 9000, "secondary_used": 20.0,
                   "secondary_reset_after_s": 300000},
             "b": {"primary_used": 0.0}}
    with running_pool(["a", "b"], usage=usage, config={"dormant-touch": "always"}) as pool:
        pool.prime_usage("a", "b")
        touched = pool.post()
        assert pool.served_by(touched) == "b"
        pool.wait_bookkeeping()
        assert pool.engine.store.decisions(1)[0].reason.startswith("touch dormant")
        touches = pool.engine.store.dormant_touches(time.time())
        assert touches.get(pool.accounts["b"].id) == {"rate.primary", "rate.secondary"}
        # The fake's usage for b still looks dormant; the recorded touch keeps it from being promoted.
        pool.prime_usage("a", "b")
        pool.post()
        pool.wait_bookkeeping()
        assert not pool.engine.store.decisions(1)[0].reason.startswith("touch dormant")


def test_success_clears_an_expired_cooldown_row() -> None:
    with running_pool(["a"]) as pool:
        account_id = pool.accounts["a"].id
        pool.engine.store.set_cooldown(Cooldown(account_id, time.time() - 1, 429, "rate limited", "body"))
        assert account_id in pool.engine.store.cooldowns(0)
        assert pool.post().status_code == 200
        pool.wait_bookkeeping()
        assert account_id not in pool.engine.store.cooldowns(0)


def test_no_usable_account_gets_503_with_the_reason() -> None:
    with running_pool(["a"]) as pool:
        pool.engine.store.set_state(pool.accounts["a"].id, AccountState.NEEDS_LOGIN, "sign-in expired")
        response = pool.post()
        assert response.status_code == 503
        assert "codex-pool" in response.json()["error"]["message"]
        assert pool.upstream.codex_requests() == []
