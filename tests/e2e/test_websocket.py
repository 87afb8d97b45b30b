"""End to end: the Responses WebSocket through a running proxy, driven by a plain ``websockets``
client (what Codex CLI sends is covered with the real program in tests/clients/test_websocket.py),
with the fake backend's WebSocket endpoint behind the proxy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.proxykit import CODEX_HEADERS, Pool, codex_body, replies, running_pool

SESSION = "sess-ws-1"


def create(**extra: Any) -> str:
    body = codex_body(**extra)
    body.pop("stream", None)
    return json.dumps({"type": "response.create", **body})


@contextmanager
def socket(pool: Pool, path: str = "/backend-api/codex/responses", *, key: str | None = None,
           headers: dict[str, str] | None = None) -> Iterator[ClientConnection]:
    url = pool.url.replace("http://", "ws://") + path
    sent = {**CODEX_HEADERS, "session-id": SESSION, **(headers or {})}
    sent.pop("accept", None)
    if key is not False:
        sent["authorization"] = f"Bearer {key or pool.engine.api_key}"
    with connect(url, additional_headers=sent, open_timeout=10, max_size=None, proxy=None) as conn:
        yield conn


def answer(conn: ClientConnection) -> list[dict[str, Any]]:
    """Every event of one answer, up to its terminal event (or an error)."""
    events: list[dict[str, Any]] = []
    while True:
        event = json.loads(conn.recv(timeout=30))
        events.append(event)
        if event["type"] in ("response.completed", "response.failed", "response.incomplete", "error"):
            return events


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def test_a_request_is_answered_over_the_socket_with_the_backend_upgrade_headers() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.ws.turn_state = "ts-from-a"
        with socket(pool) as conn:
            assert conn.response is not None
            upgrade = {k.lower(): v for k, v in conn.response.headers.raw_items()}
            assert upgrade["x-codex-turn-state"] == "ts-from-a"
            assert upgrade["openai-model"] == "gpt-5.5"
            assert upgrade["x-models-etag"] == "fake-etag-1" and "x-reasoning-included" in upgrade
            conn.send(create())
            events = answer(conn)
            assert text_of(events) == "Hi from a!"
            assert events[0]["type"] == "codex.rate_limits"  # the backend's quota event comes through
            conn.send(create(input=[]))
            assert text_of(answer(conn)) == "Hi from a!"
        [first, second] = pool.upstream.codex_requests()
        assert first.socket == second.socket == 1 and first.account_id == "a"
        assert pool.engine.api_key not in json.dumps(first.headers)
        pool.wait_bookkeeping()
        assert pool.engine.store.usage(pool.accounts["a"].id) is not None  # fed from codex.rate_limits
        assert [d.route for d in pool.engine.store.decisions(2)] == ["responses.ws", "responses.ws"]


@pytest.mark.parametrize(("key", "headers", "status"), [
    (False, {}, 401),
    ("wrong-key", {}, 401),
    (None, {"origin": "http://evil.example"}, 403),
])
def test_the_upgrade_needs_the_local_key_and_a_local_origin(
    key: Any, headers: dict[str, str], status: int
) -> None:
    with running_pool(["a"]) as pool:
        with pytest.raises(InvalidStatus) as refused, socket(pool, key=key, headers=headers):
            pass
        assert refused.value.response.status_code == status
        assert pool.upstream.ws.opened == 0


def test_an_in_band_429_before_output_moves_a_whole_context_request_unseen() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.usage_limit(resets_in=1800))
        with socket(pool) as conn:
            conn.send(create())
            events = answer(conn)
            assert text_of(events) == "Hi from b!"
            assert all(e["type"] != "error" for e in events)  # the client never saw a's refusal
            conn.send(create(input=[]))  # later requests stay on b's socket
            assert text_of(answer(conn)) == "Hi from b!"
        assert [r.account_id for r in pool.upstream.codex_requests()] == ["a", "b", "b"]
        assert pool.cooldown_until("a") is not None


def test_overload_and_a_closed_socket_before_output_fail_over_too() -> None:
    with running_pool(["a", "b", "c"]) as pool:
        # Every account's quota known before the socket opens, so the order is a, b, c: with the
        # fetches at start still under way, an account with fresh quota could rank ahead of one
        # without (failed once in a full run: b never tried).
        pool.prime_usage("a", "b", "c")
        pool.upstream.script("a", replies.overloaded(style="error"))
        pool.upstream.script("b", replies.drop(after=1))
        with socket(pool) as conn:
            conn.send(create())
            assert text_of(answer(conn)) == "Hi from c!"
        assert [r.account_id for r in pool.upstream.codex_requests()] == ["a", "b", "c"]


def test_a_continuation_is_never_moved_to_another_account() -> None:
    with running_pool(["a", "b"]) as pool:
        with socket(pool) as conn:
            conn.send(create())
            done = answer(conn)[-1]
            pool.upstream.script("a", replies.usage_limit(resets_in=1800))
            conn.send(create(previous_response_id=done["response"]["id"], input=[]))
            [error] = answer(conn)
            assert error["type"] == "error" and error["error"]["code"] == "previous_response_not_found"
            conn.send(create())  # the whole context again: served by b on a new upstream socket
            assert text_of(answer(conn)) == "Hi from b!"
        sent = pool.upstream.codex_requests()
        assert [r.account_id for r in sent] == ["a", "a", "b"]
        assert "previous_response_id" not in sent[2].body
        assert pool.upstream.outcomes["foreign_previous_response"] == 0


def test_reasoning_another_account_made_is_left_out() -> None:
    with running_pool(["a", "b"]) as pool:
        with socket(pool) as conn:
            conn.send(create())
            done = answer(conn)[-1]["response"]
        reasoning = [item for item in done["output"] if item["type"] == "reasoning"]
        assert reasoning and reasoning[0]["encrypted_content"].startswith("enc:a:")
        pool.upstream.script("a", replies.usage_limit(resets_in=1800))
        context = [*codex_body()["input"], *done["output"],
                   {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "more"}]}]
        with socket(pool) as conn:
            conn.send(create(input=context))
            assert text_of(answer(conn)) == "Hi from b!"
        last = pool.upstream.codex_requests()[-1]
        assert last.account_id == "b" and all(i["type"] != "reasoning" for i in last.body["input"])
        assert len(last.body["input"]) == len(context) - 1
        assert pool.upstream.outcomes["foreign_reasoning"] == 0


def test_turn_state_goes_only_to_the_account_that_issued_it() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.ws.turn_state = "ts-a"
        with socket(pool) as conn:
            conn.send(create(client_metadata={"x-codex-turn-state": "ts-a"}))
            answer(conn)
        pool.upstream.script_handshake("a", replies.usage_limit(resets_in=1800))
        with socket(pool, headers={"x-codex-turn-state": "ts-a"}) as conn:
            conn.send(create(client_metadata={"x-codex-turn-state": "ts-a", "session_id": SESSION}))
            assert text_of(answer(conn)) == "Hi from b!"
        on_b = pool.upstream.codex_requests("b")[-1]
        assert "x-codex-turn-state" not in on_b.headers
        assert on_b.body["client_metadata"] == {"session_id": SESSION}


def test_every_account_refusing_the_upgrade_is_the_pooled_429() -> None:
    with running_pool(["a", "b"]) as pool:
        for fid in ("a", "b"):
            pool.upstream.script_handshake(fid, replies.usage_limit(resets_in=600))
        with pytest.raises(InvalidStatus) as refused, socket(pool):
            pass
        response = refused.value.response
        assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
        assert json.loads(response.body)["error"]["type"] == "usage_limit_reached"


def test_no_account_left_mid_socket_is_an_in_band_usage_limit() -> None:
    with running_pool(["a"]) as pool, socket(pool) as conn:
        pool.upstream.script("a", replies.usage_limit(resets_in=600))
        conn.send(create())
        [error] = answer(conn)
        assert error["status"] == 429 and error["error"]["type"] == "usage_limit_reached"
        assert int(error["headers"]["retry-after"]) > 0


def test_the_connection_age_limit_reaches_the_client_and_both_sides_close() -> None:
    with running_pool(["a"]) as pool:
        pool.upstream.ws.max_requests = 1
        with socket(pool) as conn:
            conn.send(create())
            answer(conn)
            conn.send(create())
            [error] = answer(conn)
            assert error["error"]["code"] == "websocket_connection_limit_reached"
            with pytest.raises(ConnectionClosed):
                conn.recv(timeout=10)
        assert pool.upstream.ws.open_now == 0


def test_upstream_closing_mid_answer_closes_the_client_as_an_error() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.drop(after=5))
        with socket(pool) as conn:
            conn.send(create())
            with pytest.raises(ConnectionClosed) as closed:
                answer(conn)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        assert [r.account_id for r in pool.upstream.codex_requests()] == ["a"]  # output had started
        pool.wait_bookkeeping()
        assert pool.engine.store.decisions(1)[0].status == 502


def test_bad_messages_are_answered_in_band_and_the_socket_stays_usable() -> None:
    with running_pool(["a"], config={"max-body-mb": 0.01}) as pool:
        with socket(pool) as conn:
            conn.send("not json")
            assert json.loads(conn.recv(timeout=10))["error"]["code"] == "invalid_json"
            conn.send(create(instructions="x" * 20_000))
            too_big = json.loads(conn.recv(timeout=10))
            assert too_big["status"] == 413 and too_big["error"]["code"] == "body_too_large"
            conn.send(create())
            assert text_of(answer(conn)) == "Hi from a!"
        assert len(pool.upstream.codex_requests()) == 1


def test_a_client_leaving_mid_answer_closes_the_upstream_socket() -> None:
    with running_pool(["a"]) as pool:
        pool.upstream.set_default("a", replies.ok(deltas=200, event_delay=0.02))
        with socket(pool) as conn:
            conn.send(create())
            conn.recv(timeout=10)
        deadline = time.monotonic() + 10
        while pool.upstream.ws.open_now and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.upstream.ws.open_now == 0 and pool.upstream.disconnects == 1


def test_a_slow_client_pauses_reading_upstream() -> None:
    # Pings stuck behind unread data would time out on the fake's one-second keep-alive; the real
    # backend allows far longer than this test's pause.
    with running_pool(["a"], upstream_ping=60) as pool:
        events = 1200
        # About 38 MB that no compression shrinks: the buffers on the way hold about 13 MB.
        pool.upstream.set_default("a", replies.ok(deltas=events, delta_size=32 * 1024).but(noise=True))
        with socket(pool) as conn:
            conn.send(create())
            conn.recv(timeout=10)
            sent = -1
            while sent != pool.upstream.ws.sent:  # until the backend can send no more
                sent = pool.upstream.ws.sent
                time.sleep(0.5)
            assert sent < events * 2 / 3  # held up by the client that does not read, not buffered
            assert len(text_of(answer(conn))) == events * 32 * 1024  # and nothing was lost


def test_pings_keep_a_slow_answer_alive() -> None:
    # The fake backend pings every second and drops a socket that does not answer within another.
    with running_pool(["a"]) as pool:
        pool.upstream.set_default("a", replies.ok(deltas=3, event_delay=1.5))
        with socket(pool) as conn:
            conn.send(create())
            assert text_of(answer(conn)) == "Hi from a!"


def test_v1_clients_get_their_messages_shaped_for_the_codex_backend() -> None:
    with running_pool(["a"]) as pool:
        with socket(pool, "/v1/responses") as conn:
            conn.send(json.dumps({"type": "response.create", "model": "gpt-5.5", "input": "hi",
                                  "temperature": 0.2}))
            assert text_of(answer(conn)) == "Hi from a!"
        [sent] = pool.upstream.codex_requests()
        assert sent.body["store"] is False and "temperature" not in sent.body
        assert sent.body["input"][0]["content"][0]["text"] == "hi"
        assert sent.body["include"] == ["reasoning.encrypted_content"]


def test_a_401_at_the_upgrade_refreshes_the_token_and_tries_again() -> None:
    with running_pool(["a", "b"]) as pool:
        before = pool.account("a").tokens.access_token
        pool.upstream.script_handshake("a", replies.unauthorized())
        with socket(pool) as conn:
            conn.send(create())
            assert text_of(answer(conn)) == "Hi from a!"
        [sent] = pool.upstream.codex_requests()
        assert sent.account_id == "a" and sent.token != before  # the refreshed token opened it
        assert pool.upstream.outcomes["handshake_401"] == 1


def test_an_in_band_401_refreshes_the_token_and_moves_the_request() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.unauthorized())
        with socket(pool) as conn:
            conn.send(create())
            assert text_of(answer(conn)) == "Hi from b!"
        assert [r.account_id for r in pool.upstream.codex_requests()] == ["a", "b"]
        assert pool.cooldown_until("a") is None  # a stale token says nothing about the account


def test_fast_mode_is_decided_for_each_message() -> None:
    with running_pool(["a"], config={"fast-mode": "always"}) as pool:
        with socket(pool) as conn:
            conn.send(create())
            answer(conn)
            conn.send(create(service_tier="flex"))  # the client's own choice wins
            answer(conn)
        first, second = (r.body for r in pool.upstream.codex_requests())
        assert first["service_tier"] == "priority" and second["service_tier"] == "flex"
        pool.wait_bookkeeping()
        notes = [d.fast_note for d in pool.engine.store.decisions(2)]
        assert all(note for note in notes), notes


def test_stopping_the_proxy_closes_open_sockets_on_both_sides() -> None:
    with running_pool(["a"]) as pool, socket(pool) as conn:
        conn.send(create())
        answer(conn)
        pool.engine.stop()
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # "service restart"
        deadline = time.monotonic() + 10
        while pool.upstream.ws.open_now and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.upstream.ws.open_now == 0
