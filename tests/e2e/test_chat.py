"""End to end: ``POST /v1/chat/completions`` with the official OpenAI Python SDK, through the proxy to
the fake backend, which holds each translated request to the Responses API's own rules."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

from tests.support.proxykit import Pool, replies, running_pool

pytestmark = pytest.mark.clients

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": False},
        "strict": True,
    },
}


@pytest.fixture
def pool() -> Iterator[Pool]:
    with running_pool(["a", "b"]) as running:
        yield running


@pytest.fixture
def sdk(pool: Pool) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{pool.url}/v1", api_key=pool.engine.api_key, max_retries=0) as client:
        yield client


def test_a_plain_completion_comes_back_in_chat_shape(pool: Pool, sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(
        model="gpt-5.5", max_tokens=500, temperature=0.3,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "say hi"}])
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.content == "Hi from a!"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.prompt_tokens == 12
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    [seen] = pool.upstream.codex_requests()
    assert seen.body["instructions"] == "Be brief."
    assert seen.body["input"] == [{"type": "message", "role": "user",
                                   "content": [{"type": "input_text", "text": "say hi"}]}]
    assert seen.body["stream"] is True and seen.body["store"] is False
    assert not {"messages", "max_tokens", "temperature"} & set(seen.body)
    assert seen.token != pool.engine.api_key  # the pool account's token, never the local key
    pool.wait_bookkeeping()
    assert pool.engine.store.decisions(1)[0].route == "v1.chat"


def test_a_streamed_completion_arrives_in_chunks_then_usage_then_done(pool: Pool, sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="gpt-5.5", stream=True, stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": "say hi"}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hi from a!"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 12
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id.startswith("chatcmpl-")
    # On the wire, the stream ends with the [DONE] sentinel.
    with pool.client() as raw:
        wire = raw.post("/v1/chat/completions", json={"model": "gpt-5.5", "stream": True,
                                                      "messages": [{"role": "user", "content": "hi"}]})
    assert wire.headers["content-type"].startswith("text/event-stream")
    assert wire.text.endswith("data: [DONE]\n\n")
    assert "response.output_text.delta" not in wire.text


def test_a_tool_call_round_trip(pool: Pool, sdk: openai.OpenAI) -> None:
    pool.upstream.script("a", replies.tool_call("get_weather", '{"city": "Paris"}'))
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = sdk.chat.completions.create(model="gpt-5.5", messages=messages,  # type: ignore[arg-type]
                                        tools=[WEATHER_TOOL], tool_choice="auto")  # type: ignore[list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert pool.upstream.codex_requests()[0].body["tools"] == [
        {"type": "function", **WEATHER_TOOL["function"]}]  # type: ignore[dict-item]
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18 °C, sunny"}]
    second = sdk.chat.completions.create(model="gpt-5.5", messages=messages,  # type: ignore[arg-type]
                                         tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert second.choices[0].message.content == "Hi from a!"
    items = pool.upstream.codex_requests()[1].body["input"]
    assert [i["type"] for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1]["call_id"] == items[2]["call_id"] == call.id
    assert items[2]["output"] == "18 °C, sunny"


def test_a_streamed_tool_call_arrives_as_tool_call_deltas(pool: Pool, sdk: openai.OpenAI) -> None:
    pool.upstream.script("a", replies.tool_call("get_weather", '{"city": "Reykjavik"}', deltas=4))
    stream = sdk.chat.completions.create(model="gpt-5.5", stream=True, tools=[WEATHER_TOOL],  # type: ignore[list-item]
                                         messages=[{"role": "user", "content": "Weather in Reykjavik?"}])
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            entry["name"] += (delta.function.name if delta.function else None) or ""
            entry["arguments"] += (delta.function.arguments if delta.function else None) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "Reykjavik"}


class Weather(BaseModel):
    city: str
    celsius: int
    sunny: bool


def test_a_json_schema_response_format_gets_a_parsed_answer(pool: Pool, sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.parse(model="gpt-5.5", response_format=Weather,
                                        messages=[{"role": "user", "content": "Weather in Paris as JSON"}])
    parsed = answer.choices[0].message.parsed
    assert isinstance(parsed, Weather) and parsed.celsius == 1
    fmt = pool.upstream.codex_requests()[0].body["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "Weather" and fmt["strict"] is True
    assert set(fmt["schema"]["properties"]) == {"city", "celsius", "sunny"}


def test_failover_and_cooldown_work_as_on_every_route(pool: Pool, sdk: openai.OpenAI) -> None:
    pool.upstream.script("a", replies.usage_limit(resets_in=3600))
    answer = sdk.chat.completions.create(model="gpt-5.5", prompt_cache_key="chat-session-1",
                                         messages=[{"role": "user", "content": "say hi"}])
    assert answer.choices[0].message.content == "Hi from b!"
    assert [r.account_id for r in pool.upstream.codex_requests()] == ["a", "b"]
    assert all(r.body["prompt_cache_key"] == "chat-session-1" for r in pool.upstream.codex_requests())
    assert pool.cooldown_until("a") is not None


def test_a_stream_fails_over_unseen_before_its_first_output(pool: Pool, sdk: openai.OpenAI) -> None:
    pool.upstream.script("a", replies.overloaded())
    stream = sdk.chat.completions.create(model="gpt-5.5", stream=True,
                                         messages=[{"role": "user", "content": "say hi"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi from b!"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1


def test_errors_reach_the_sdk_as_errors_never_as_short_answers(pool: Pool, sdk: openai.OpenAI) -> None:
    pool.upstream.script("a", replies.drop(after=6))
    with pytest.raises(openai.APIConnectionError):
        list(sdk.chat.completions.create(model="gpt-5.5", stream=True,
                                         messages=[{"role": "user", "content": "say hi"}]))
    pool.upstream.script("a", replies.stream_error("invalid_prompt", "The prompt was refused."))
    with pytest.raises(openai.APIError, match=r"The prompt was refused\."):
        list(sdk.chat.completions.create(model="gpt-5.5", stream=True,
                                         messages=[{"role": "user", "content": "say hi"}]))
    with pytest.raises(openai.BadRequestError, match="one choice per request"):
        sdk.chat.completions.create(model="gpt-5.5", n=2, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="function tools only"):
        sdk.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "hi"}],
                                    tools=[{"type": "custom", "custom": {"name": "x"}}])  # type: ignore[list-item]
