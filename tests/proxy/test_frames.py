"""The Responses WebSocket's messages, classified (tray/proxy/frames.py) and whose reasoning is whose
(tray/proxy/owners.py): worked examples, shaped as Codex CLI 0.169.0 and the backend send them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tray.proxy import frames
from tray.proxy.owners import ReasoningOwners


def msg(**fields: Any) -> str:
    return json.dumps(fields)


# ---- what the client sends ----------------------------------------------------------------------


def test_a_whole_context_request_may_move_and_a_continuation_may_not() -> None:
    full = frames.read_request(msg(type="response.create", model="gpt-5.5", input=[{"type": "message"}]))
    assert full is not None and full.creates and full.movable
    more = frames.read_request(msg(type="response.create", previous_response_id="resp_1", input=[]))
    assert more is not None and more.creates and not more.movable and more.previous_response_id == "resp_1"
    processed = frames.read_request(msg(type="response.processed", response_id="resp_1"))
    assert processed is not None and not processed.creates
    assert frames.read_request("not json") is None and frames.read_request("[1, 2]") is None


def reasoning(blob: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": f"rs_{blob}", "summary": [], "encrypted_content": blob}


def test_for_account_leaves_out_turn_state_and_reasoning_that_is_not_the_accounts() -> None:
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    request = frames.read_request(msg(
        type="response.create", input=[user, reasoning("enc-a"), reasoning("enc-b"), reasoning("enc-old")],
        client_metadata={"x-codex-turn-state": "ts-a", "session_id": "s1"}))
    assert request is not None
    owners = ReasoningOwners()
    owners.learn(1, ["enc-a"])
    owners.learn(2, ["enc-b"])
    text, dropped = frames.for_account(request, turn_state_ok=False, foreign=owners.foreign_to(2),
                                       patch={"service_tier": "priority"})
    sent = json.loads(text)
    # a's reasoning is left out; b's own and an unknown (older) blob go as they are.
    assert [i.get("encrypted_content") for i in sent["input"]] == [None, "enc-b", "enc-old"]
    assert dropped == 1
    assert sent["client_metadata"] == {"session_id": "s1"}
    assert sent["service_tier"] == "priority"


def test_for_account_sends_the_clients_own_text_when_nothing_changes() -> None:
    text = '{"type": "response.create",   "input": [], "client_metadata": {"x-codex-turn-state": "t"}}'
    request = frames.read_request(text)
    assert request is not None
    assert frames.for_account(request, turn_state_ok=True, foreign=lambda blob: False) == (text, 0)


# ---- what the backend sends ---------------------------------------------------------------------

USAGE_LIMIT = {"type": "error", "status": 429,
               "error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
                         "plan_type": "plus", "resets_at": 1_800_000_000, "resets_in_seconds": 3600},
               "headers": {"x-codex-primary-used-percent": "100.0", "x-codex-primary-window-minutes": 300}}


@pytest.mark.parametrize(("event", "kind", "terminal"), [
    ({"type": "codex.rate_limits", "rate_limits": {}}, "preamble", False),
    ({"type": "response.created", "response": {"id": "resp_1"}}, "preamble", False),
    ({"type": "response.in_progress", "response": {"id": "resp_1"}}, "preamble", False),
    ({"type": "response.output_item.added", "item": {"type": "message"}}, "output", False),
    ({"type": "response.output_text.delta", "delta": "Hi"}, "output", False),
    ({"type": "response.completed", "response": {"id": "resp_1", "output": []}}, "output", True),
    (USAGE_LIMIT, "failover", True),
    ({"type": "error", "status": 429, "error": {"type": "rate_limit_exceeded", "message": "slow down"}},
     "failover", True),
    ({"type": "error", "status": 503, "error": {"code": "server_is_overloaded", "message": "busy"}},
     "failover", True),
    ({"type": "response.failed", "response": {"error": {"code": "server_is_overloaded"}}}, "failover", True),
    ({"type": "error", "status": 500, "error": {"type": "server_error"}}, "failover", True),
    ({"type": "error", "status": 401, "error": {"code": "token_expired"}}, "unauthorized", True),
    ({"type": "error", "status": 400, "error": {"code": "websocket_connection_limit_reached"}}, "limit",
     True),
    ({"type": "error", "status": 400, "error": {"code": "previous_response_not_found"}}, "error", True),
    ({"type": "error", "status": 429, "error": {"type": "usage_not_included"}}, "error", True),
])
def test_upstream_events_are_classified_for_failover(
    event: dict[str, Any], kind: str, terminal: bool
) -> None:
    read = frames.read_event(json.dumps(event))
    assert (read.kind, read.terminal) == (kind, terminal)


def test_an_in_band_429_carries_its_quota_headers_and_body_for_the_cooldown() -> None:
    read = frames.read_event(json.dumps(USAGE_LIMIT))
    assert read.headers == {"x-codex-primary-used-percent": "100.0", "x-codex-primary-window-minutes": "300"}
    assert json.loads(read.error_body)["error"]["resets_at"] == 1_800_000_000


def test_after_the_first_output_only_marked_events_are_read() -> None:
    delta = msg(type="response.output_text.delta", delta='he said "error" and "response.completed"')
    assert frames.read_event(delta, started=True).data is None  # passed on unread
    done = frames.read_event(msg(type="response.completed", response={"id": "r", "output": []}), started=True)
    assert done.terminal and frames.response_id(done) == "r"


def test_reasoning_blobs_and_response_ids_are_found_in_the_answer() -> None:
    item = frames.read_event(msg(type="response.output_item.done", item=reasoning("enc-1")))
    assert frames.reasoning_blobs(item) == ["enc-1"]
    done = frames.read_event(msg(type="response.completed", response={
        "id": "resp_9", "output": [reasoning("enc-1"), {"type": "message"}]}))
    assert frames.reasoning_blobs(done) == ["enc-1"] and frames.response_id(done) == "resp_9"


def test_the_proxys_own_in_band_answers_look_like_the_backends() -> None:
    not_found = json.loads(frames.not_found_error("resp_7"))
    assert not_found["type"] == "error" and not_found["status"] == 400
    assert not_found["error"]["code"] == "previous_response_not_found"
    assert not_found["error"]["param"] == "previous_response_id"
    pooled = json.loads(frames.error_message(429, {"error": {"type": "usage_limit_reached", "resets_at": 5}},
                                             {"retry-after": "30"}))
    assert pooled == {"type": "error", "status": 429, "headers": {"retry-after": "30"},
                      "error": {"type": "usage_limit_reached", "resets_at": 5}}


def test_owners_forget_the_oldest_blobs_first() -> None:
    owners = ReasoningOwners(kept=2)
    owners.learn(1, ["x", "y"])
    owners.learn(2, ["z"])
    assert owners.owner("x") is None and owners.owner("y") == 1 and owners.owner("z") == 2
    assert owners.foreign_to(1)("z") and not owners.foreign_to(2)("z") and not owners.foreign_to(1)("x")
