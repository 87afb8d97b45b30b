"""Responses answers in Chat Completions shape (pure).

:func:`completion` turns the final response object of a non-streaming request into a
``chat.completion``; :class:`ChatStream` turns the SSE events of a streamed answer, one at a time,
into ``chat.completion.chunk`` events and ends them with ``data: [DONE]``:

| Responses event | chunk ``delta`` |
| --- | --- |
| ``response.created`` | ``{"role": "assistant", "content": ""}`` |
| ``response.output_text.delta`` / ``response.refusal.delta`` | ``{"content": ...}`` / ``{"refusal": ...}`` |
| ``response.output_item.added`` (a ``function_call``) | ``tool_calls[i]``: ``id``, ``name``, ``""`` |
| ``response.function_call_arguments.delta`` | ``tool_calls[i].function.arguments`` piece |
| ``response.completed`` / ``.incomplete`` | ``{}`` with ``finish_reason``; usage (if asked); ``[DONE]`` |
| ``response.failed`` / ``error`` | ``data: {"error": ...}`` and the end (no ``[DONE]``) |

Reasoning, rate-limit and other events have no chat counterpart and produce nothing. A stream that
ends without its final event is :class:`StreamCut`, so the client sees a broken stream, never a short
answer that looks complete.
"""

from __future__ import annotations

import json
from typing import Any

from tray.errors import UpstreamError
from tray.proxy.chatrequest import ChatOptions
from tray.proxy.sse import SSEEvent

DONE = b"data: [DONE]\n\n"
FINISHED = frozenset({"response.completed", "response.incomplete", "response.done"})
FAILED = frozenset({"response.failed", "error"})
FINISH_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


class StreamCut(UpstreamError):
    """The Codex backend's stream ended before its final event."""


def chat_id(response_id: Any) -> str:
    text = str(response_id or "")
    return "chatcmpl-" + (text.removeprefix("resp_") or "codex-pool")


def usage(raw: Any) -> dict[str, Any] | None:
    """Responses usage (``input_tokens``...) as Chat Completions usage (``prompt_tokens``...)."""
    if not isinstance(raw, dict):
        return None
    prompt, completion_tokens = int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0)
    cached = (raw.get("input_tokens_details") or {}).get("cached_tokens", 0)
    reasoning = (raw.get("output_tokens_details") or {}).get("reasoning_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": int(raw.get("total_tokens") or prompt + completion_tokens),
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning}}


def finish_reason(response: dict[str, Any], tool_calls: bool) -> str:
    if tool_calls:
        return "tool_calls"
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details") or {}
        return FINISH_REASONS.get(str(details.get("reason")), "length")
    return "stop"


def completion(response: dict[str, Any]) -> dict[str, Any]:
    """The final response object of an answer as a ``chat.completion``."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text", "")))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal", "")))
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None,
                               "refusal": "".join(refusals) if refusals else None}
    if calls:
        message["tool_calls"] = calls
    answer: dict[str, Any] = {
        "id": chat_id(response.get("id")), "object": "chat.completion",
        "created": int(response.get("created_at") or 0), "model": response.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(response, bool(calls))}],
        "usage": usage(response.get("usage")),
    }
    if response.get("service_tier"):
        answer["service_tier"] = response["service_tier"]
    return answer


def _frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class ChatStream:
    """One streamed answer's translation; :meth:`feed` every event in order, then :meth:`finish`."""

    def __init__(self, options: ChatOptions, created: int = 0) -> None:
        self.options = options
        self.id = chat_id(None)
        self.model: Any = None
        self.created = created
        self.started = False
        self.ended = False
        self.calls: dict[str, list[int]] = {}  # item id -> [tool call index, argument chars sent]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _frame({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                       "model": self.model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                          "finish_reason": finish}]})

    def _start(self, response: Any) -> bytes:
        if isinstance(response, dict):
            self.id = chat_id(response.get("id"))
            self.model = response.get("model", self.model)
            self.created = int(response.get("created_at") or self.created)
        if self.started:
            return b""
        self.started = True
        return self._chunk({"role": "assistant", "content": ""})

    def feed(self, event: SSEEvent) -> bytes:
        """The chunk events (bytes, maybe none) for one upstream event."""
        data = event.data if isinstance(event.data, dict) else {}
        kind = event.type
        if self.ended or kind is None:
            return b""
        if kind == "response.created":
            return self._start(data.get("response"))
        if kind in FAILED:
            self.ended = True
            return self._start(None) + _frame({"error": _error(kind, data)})
        if kind in FINISHED:
            return self._start(data.get("response")) + self._finish(data.get("response"))
        if kind == "response.output_text.delta":
            return self._start(None) + self._chunk({"content": str(data.get("delta", ""))})
        if kind == "response.refusal.delta":
            return self._start(None) + self._chunk({"refusal": str(data.get("delta", ""))})
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = data.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                return self._start(None) + self._call(item)
        if kind == "response.function_call_arguments.delta":
            return self._arguments(str(data.get("item_id", "")), str(data.get("delta", "")))
        return b""

    def _call(self, item: dict[str, Any]) -> bytes:
        """A function call item, when it is added (its header) or done (whatever arguments no delta
        carried: some answers only send them whole)."""
        key = str(item.get("id") or item.get("call_id") or "")
        out = b""
        if key not in self.calls:
            self.calls[key] = [len(self.calls), 0]
            header = {"index": self.calls[key][0], "id": item.get("call_id"), "type": "function",
                      "function": {"name": item.get("name"), "arguments": ""}}
            out = self._chunk({"tool_calls": [header]})
        arguments = str(item.get("arguments") or "")
        sent = self.calls[key][1]
        if len(arguments) > sent:
            out += self._arguments(key, arguments[sent:])
        return out

    def _arguments(self, key: str, piece: str) -> bytes:
        found = self.calls.get(key)
        if found is None or not piece:
            return b""
        found[1] += len(piece)
        return self._chunk({"tool_calls": [{"index": found[0], "function": {"arguments": piece}}]})

    def _finish(self, response: Any) -> bytes:
        self.ended = True
        response = response if isinstance(response, dict) else {}
        out = self._chunk({}, finish_reason(response, bool(self.calls)))
        if self.options.include_usage:
            out += _frame({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model, "choices": [], "usage": usage(response.get("usage"))})
        return out + DONE

    def finish(self) -> bytes:
        """After the last event: nothing more, or :class:`StreamCut` when the answer never ended."""
        if not self.ended:
            raise StreamCut("The Codex backend's stream ended before the answer was complete.")
        return b""


def _error(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind == "response.failed":
        response = data.get("response")
        found = response.get("error") if isinstance(response, dict) else None
    else:
        found = data.get("error") if isinstance(data.get("error"), dict) else {
            k: v for k, v in data.items() if k not in ("type", "sequence_number")}
    error = dict(found) if isinstance(found, dict) else {}
    error.setdefault("message", "The Codex backend could not complete the answer.")
    error.setdefault("type", "upstream_error")
    return error
