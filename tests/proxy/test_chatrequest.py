"""A Chat Completions request as the Responses request it means: worked examples (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from tray.proxy.chatrequest import ChatOptions, ChatRequestError, responses_body


def test_a_whole_conversation_with_a_tool_round_trip() -> None:
    chat: dict[str, Any] = {
        "model": "gpt-5.5",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 32000,
        "prompt_cache_key": "s-1",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and the weather there?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "3 °C"},
            {"role": "assistant", "content": "Oslo, 3 °C."},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [{"type": "function",
                   "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "reasoning_effort": "high",
        "stop": ["\n\n"],
    }
    body, dropped, options = responses_body(chat)
    assert body == {
        "model": "gpt-5.5",
        "parallel_tool_calls": False,
        "prompt_cache_key": "s-1",
        "max_tokens": 32000,  # left for the shaping step, which drops it with its log line
        "instructions": "You are terse.\n\nUse tools.",
        "input": [
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is in this picture, and the weather there?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": '{"city":"Oslo"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "3 °C"},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Oslo, 3 °C."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
        ],
        "stream": True,
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "reasoning": {"effort": "high"},
    }
    assert dropped == ["stop"]
    assert options == ChatOptions(stream=True, include_usage=True)
    assert "messages" in chat  # the caller's object is untouched


def test_response_formats_become_text_formats() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    user = [{"role": "user", "content": "hi"}]
    strict, _, _ = responses_body({"messages": user, "verbosity": "low", "response_format": {
        "type": "json_schema", "json_schema": {"name": "X", "schema": schema, "strict": True}}})
    fmt = {"type": "json_schema", "name": "X", "schema": schema, "strict": True}
    assert strict["text"] == {"format": fmt, "verbosity": "low"}
    loose, _, _ = responses_body({"messages": user, "response_format": {"type": "json_object"}})
    assert loose["text"] == {"format": {"type": "json_object"}}
    plain, _, options = responses_body({"messages": user})
    assert "text" not in plain and plain["instructions"] == "" and plain["stream"] is False
    assert options == ChatOptions()


@pytest.mark.parametrize(("chat", "says"), [
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, "one choice"),
    ({"messages": [{"role": "function", "content": "x"}]}, "role 'function'"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "'input_audio'"),
    ({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "custom"}]}, "function tools only"),
    ({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "grammar"}}, "'grammar'"),
])
def test_requests_that_cannot_mean_anything_upstream_are_refused(chat: dict[str, Any], says: str) -> None:
    with pytest.raises(ChatRequestError, match=says):
        responses_body(chat)
