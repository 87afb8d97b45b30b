"""Responses answers in Chat Completions shape: worked examples (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.upstream_requests import function_call_events
from tests.fakes.upstream_wire import response_events
from tray.proxy.chatanswer import DONE, ChatStream, StreamCut, completion
from tray.proxy.chatrequest import ChatOptions
from tray.proxy.sse import SSEParser

USAGE = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 5,
         "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 17}


def _frames(out: bytes) -> list[Any]:
    """The data of each SSE event in ``out`` (``[DONE]`` as the string)."""
    found = []
    for block in out.decode().split("\n\n"):
        if block:
            assert block.startswith("data: ")
            text = block[len("data: "):]
            found.append(text if text == "[DONE]" else json.loads(text))
    return found


STREAMING = ChatOptions(stream=True)


def _translate(wire: list[bytes], options: ChatOptions = STREAMING) -> list[Any]:
    stream, parser = ChatStream(options), SSEParser()
    out = b"".join(stream.feed(event) for event in parser.feed(b"".join(wire)))
    return _frames(out + stream.finish())


def test_a_final_response_becomes_a_chat_completion() -> None:
    response = {"id": "resp_abc", "object": "response", "created_at": 1700000000, "model": "gpt-5.5",
                "status": "completed", "usage": USAGE, "output": [
                    {"type": "reasoning", "summary": []},
                    {"type": "message", "role": "assistant",
                     "content": [{"type": "output_text", "text": "Hi "},
                                 {"type": "output_text", "text": "there"}]},
                ]}
    assert completion(response) == {
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "gpt-5.5",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hi there", "refusal": None}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 2}},
    }


def test_a_tool_call_and_a_cut_answer_set_the_finish_reason() -> None:
    call = {"type": "function_call", "call_id": "call_9", "name": "f", "arguments": '{"a":1}'}
    called = completion({"id": "resp_1", "status": "completed", "output": [call]})
    message = called["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_9", "type": "function",
                                      "function": {"name": "f", "arguments": '{"a":1}'}}]
    assert called["choices"][0]["finish_reason"] == "tool_calls"
    cut = completion({"id": "resp_2", "status": "incomplete",
                      "incomplete_details": {"reason": "max_output_tokens"}, "output": []})
    assert cut["choices"][0]["finish_reason"] == "length" and cut["choices"][0]["message"]["content"] == ""


def test_a_text_stream_becomes_chunks_then_done() -> None:
    frames = _translate(response_events(["Hi ", "there", "!"], response_id="resp_7", model="gpt-5.5"))
    assert frames[-1] == "[DONE]"
    chunks = frames[:-1]
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""}, {"content": "Hi "}, {"content": "there"}, {"content": "!"}, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]
    assert {c["id"] for c in chunks} == {"chatcmpl-7"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"gpt-5.5"}


def test_usage_comes_last_when_asked_for() -> None:
    frames = _translate(response_events(["x"], response_id="resp_7", model="m"),
                        ChatOptions(stream=True, include_usage=True))
    assert frames[-1] == "[DONE]"
    assert frames[-2]["choices"] == [] and frames[-2]["usage"]["prompt_tokens"] == 12


def test_a_streamed_tool_call_becomes_tool_call_deltas() -> None:
    wire = function_call_events("get_weather", '{"city": "Oslo"}', call_id="call_1", response_id="resp_3",
                                model="m", pieces=3)
    frames = _translate(wire)
    deltas = [f["choices"][0]["delta"] for f in frames[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]}
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:-1]]
    assert "".join(pieces) == '{"city": "Oslo"}' and len(pieces) == 3  # the done event adds nothing
    assert frames[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_arguments_sent_only_whole_still_arrive() -> None:
    stream = ChatStream(ChatOptions(stream=True))
    parser = SSEParser()
    whole = function_call_events("f", '{"a": 1}', call_id="c", response_id="resp_1", model="m")
    wire = [frame for frame in whole
            if b"function_call_arguments" not in frame and b"output_item.added" not in frame]
    out = _frames(b"".join(stream.feed(e) for e in parser.feed(b"".join(wire))))
    deltas = [f["choices"][0]["delta"] for f in out[:-1]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["id"] == "c" and calls[1]["function"]["arguments"] == '{"a": 1}'


def test_a_failure_becomes_an_error_event_and_a_short_stream_is_cut() -> None:
    stream = ChatStream(ChatOptions(stream=True))
    wire = response_events(["Hi"], response_id="resp_1", model="m")
    failed = (b'event: response.failed\ndata: {"type":"response.failed","response":{"id":"resp_1",'
              b'"status":"failed","error":{"code":"server_error","message":"Boom."}}}\n\n')
    events = SSEParser().feed(b"".join(wire[:5]) + failed)
    frames = _frames(b"".join(stream.feed(e) for e in events))
    assert frames[-1] == {"error": {"code": "server_error", "message": "Boom.", "type": "upstream_error"}}
    assert "[DONE]" not in frames
    assert stream.finish() == b""  # it ended, badly, but it ended
    short = ChatStream(ChatOptions(stream=True))
    for event in SSEParser().feed(b"".join(wire[:5])):
        short.feed(event)
    with pytest.raises(StreamCut):
        short.finish()
    assert DONE == b"data: [DONE]\n\n"
