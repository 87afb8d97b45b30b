"""End to end: failover before the first byte, cooldowns, the pooled 429, and no switching after it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.fakes.upstream_wire import usage_payload
from tests.support.proxykit import codex_body, replies, running_pool, sse_types
from tray.models import PoolAvailable, PoolExhausted


def test_429_with_body_cools_down_until_its_reset_and_fails_over() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.usage_limit(resets_in=1800, usage_headers=False))
        before = time.time()
        response = pool.post()
        assert response.status_code == 200 and pool.served_by(response) == "b"
        until = pool.cooldown_until("a")
        assert until is not None and before + 1700 < until < time.time() + 1900
        # The cooling account is not tried again.
        assert pool.served_by(pool.post()) == "b"
        assert len(pool.upstream.codex_requests("a")) == 1
        pool.wait_bookkeeping()
        decisions = pool.engine.store.decisions(5)
        assert any("failover after usage limit" in d.reason for d in decisions)


def test_429_cooldown_from_headers_then_retry_after() -> None:
    with running_pool(["a", "b", "c"]) as pool:
        # Plain 429 with Retry-After only.
        pool.upstream.script("a", replies.rate_limited(retry_after=120))
        assert pool.served_by(pool.post()) == "b"
        until = pool.cooldown_until("a")
        assert until is not None and 100 < until - time.time() <= 121
        # 429 whose only reset signal is the x-codex-* headers (exhausted 5 h window, 2 h left).
        pool.upstream.set_usage("b", primary_used=100.0, primary_reset_after_s=7200)
        pool.upstream.script("b", replies.Reply(kind="json", status=429,
                                                body={"error": {"type": "rate_limit_exceeded"}}))
        assert pool.served_by(pool.post()) == "c"
        until_b = pool.cooldown_until("b")
        assert until_b is not None and 7000 < until_b - time.time() <= 7201


def test_429_updates_the_quota_cache() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.usage_limit(resets_in=900))
        pool.post()
        pool.wait_bookkeeping()
        entry = pool.engine.store.usage(pool.accounts["a"].id)
        assert entry is not None
        assert json.loads(entry.raw)["rate_limit"]["limit_reached"] is True


def test_usage_not_included_is_returned_as_is_without_cooldown() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.usage_not_included())
        response = pool.post()
        assert response.status_code == 429
        assert "usage_not_included" in response.text
        assert pool.cooldown_until("a") is None
        assert pool.upstream.codex_requests("b") == []


@pytest.mark.parametrize(
    "reply",
    [replies.server_error(500), replies.server_error(503), replies.html_403(), replies.drop(after=0),
     replies.overloaded(), replies.overloaded(style="error"),
     replies.stream_error("usage_limit_reached", "limit")],
    ids=["500", "503", "html-403", "closed-before-output", "overloaded-failed", "overloaded-error",
         "in-stream-usage-limit"],
)
def test_failures_before_output_fail_over_with_a_short_cooldown(reply: replies.Reply) -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", reply)
        response = pool.post()
        assert response.status_code == 200
        assert pool.served_by(response) == "b"
        types = sse_types(response)
        assert types.count("response.created") == 1 and "response.completed" in types
        assert "server_is_overloaded" not in response.text
        until = pool.cooldown_until("a")
        assert until is not None and until > time.time()
        assert pool.account("a").state.value == "enabled"  # never disabled for a blip


def test_timeout_fails_over() -> None:
    with running_pool(["a", "b"], upstream_timeout=httpx.Timeout(0.3, connect=2.0)) as pool:
        pool.upstream.script("a", replies.slow(1.0))
        response = pool.post()
        assert pool.served_by(response) == "b"
        assert pool.cooldown_until("a") is not None


def test_drop_after_output_is_passed_on_and_does_not_switch() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.drop(after=4, deltas=3))
        received = b""
        with pool.client() as client, pytest.raises(httpx.RemoteProtocolError), client.stream(
            "POST", "/backend-api/codex/responses", json=codex_body()
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += chunk
        assert b"response.output_item.added" in received
        assert b"response.completed" not in received
        assert pool.upstream.codex_requests("b") == []
        # The proxy keeps serving.
        assert pool.post().status_code == 200


def test_all_exhausted_gives_one_pooled_429_then_available_again() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.usage_limit(resets_in=600, exhaust=False))
        pool.upstream.script("b", replies.usage_limit(resets_in=300, exhaust=False))
        response = pool.post()
        assert response.status_code == 429
        error = response.json()["error"]
        assert error["code"] == "pool_exhausted" and "codex-pool" in error["message"]
        retry = int(response.headers["retry-after"])
        assert 280 <= retry <= 301
        assert abs(error["resets_at"] - (time.time() + retry)) < 5
        exhausted = [e for e in pool.events if isinstance(e, PoolExhausted)]
        assert len(exhausted) == 1 and exhausted[0].soonest_reset is not None
        # Still exhausted: one pooled answer each time, no upstream call, no second event.
        again = pool.post()
        assert again.status_code == 429 and "retry-after" in again.headers
        assert len([e for e in pool.events if isinstance(e, PoolExhausted)]) == 1
        # An account comes back (its cooldown over, its limit lifted): the next success announces it.
        pool.engine.store.clear_cooldown(pool.accounts["b"].id)
        pool.engine.store.clear_usage(pool.accounts["b"].id)
        assert pool.post().status_code == 200
        assert any(isinstance(e, PoolAvailable) for e in pool.events)


BLOCKED: dict[str, Any] = {"primary_used": 100.0, "allowed": False, "limit_reached": True,
                           "secondary_window_s": None}


def test_blocked_account_gets_no_request_before_its_reset() -> None:
    usage = {"a": {**BLOCKED, "primary_reset_after_s": 3600}}
    with running_pool(["a", "b"], usage=usage) as pool:
        pool.prime_usage("a", "b")
        for _ in range(3):
            assert pool.served_by(pool.post()) == "b"
        # b fails too: a is still not tried as a last resort; the client is told when to come back.
        pool.upstream.script("b", replies.rate_limited(retry_after=120))
        response = pool.post()
        assert response.status_code == 429 and response.json()["error"]["code"] == "pool_exhausted"
        assert 100 <= int(response.headers["retry-after"]) <= 121
        assert pool.upstream.codex_requests("a") == []


def test_all_blocked_gives_the_pooled_429_without_asking_upstream() -> None:
    usage = {"a": {**BLOCKED, "primary_reset_after_s": 1800}, "b": {**BLOCKED, "primary_reset_after_s": 600}}
    with running_pool(["a", "b"], usage=usage) as pool:
        pool.prime_usage("a", "b")
        response = pool.post()
        assert response.status_code == 429
        error = response.json()["error"]
        assert error["code"] == "pool_exhausted" and "codex-pool" in error["message"]
        retry = int(response.headers["retry-after"])
        assert 580 <= retry <= 601
        assert abs(error["resets_at"] - (time.time() + retry)) < 5
        assert pool.upstream.codex_requests() == []
        assert len([e for e in pool.events if isinstance(e, PoolExhausted)]) == 1


def test_blocked_account_whose_reset_passed_is_refetched_and_serves() -> None:
    with running_pool(["a"]) as pool:
        # Cached two minutes ago: blocked for one more minute, so the reset is now behind us.
        then = time.time() - 120
        stale = usage_payload(**BLOCKED, primary_reset_after_s=60, now=then)
        pool.engine.store.put_usage(pool.accounts["a"].id, json.dumps(stale), then)
        calls = pool.upstream.usage_calls["a"]
        response = pool.post()
        assert response.status_code == 200 and pool.served_by(response) == "a"
        assert pool.upstream.usage_calls["a"] > calls


def test_fast_mode_is_decided_per_attempt() -> None:
    usage = {"a": {"primary_used": 79.0, "primary_reset_after_s": 1800, "secondary_window_s": None},
             "b": {"primary_used": 98.0, "primary_reset_after_s": 1800, "secondary_window_s": None}}
    with running_pool(["a", "b"], usage=usage, config={"fast-mode": "auto"}) as pool:
        pool.prime_usage("a", "b")
        pool.upstream.script("a", replies.server_error(502))
        response = pool.post()
        assert pool.served_by(response) == "b"
        sent_a = pool.upstream.codex_requests("a")[-1].body
        sent_b = pool.upstream.codex_requests("b")[-1].body
        assert sent_a["service_tier"] == "priority"  # healthy a: fast
        assert "service_tier" not in sent_b  # b is nearly out: its own attempt has no priority
        pool.wait_bookkeeping()
        decision = pool.engine.store.decisions(1)[0]
        assert decision.fast_note is not None and "cap<3%" in decision.fast_note


def test_callers_service_tier_always_wins() -> None:
    with running_pool(["a"], config={"fast-mode": "always"}) as pool:
        pool.post(body=codex_body(service_tier="flex"))
        assert pool.upstream.codex_requests("a")[-1].body["service_tier"] == "flex"
        pool.post()
        assert pool.upstream.codex_requests("a")[-1].body["service_tier"] == "priority"


def test_other_client_errors_are_the_clients_answer_without_failover() -> None:
    with running_pool(["a", "b"]) as pool:
        body = {"detail": "This model requires a newer version of Codex."}
        pool.upstream.script("a", replies.Reply(kind="json", status=400, body=body, usage_headers=False))
        response = pool.post()
        assert response.status_code == 400 and response.json() == body
        assert pool.upstream.codex_requests("b") == []
        assert pool.cooldown_until("a") is None
