"""What the fake backend checks and builds for a Responses request's content (tests only).

:func:`problem` holds a request to the rules the real Responses API enforces on what a translating
client (the proxy's Chat Completions route) writes, each answered 400 with the API's own wording:
function tools are flat (``{"type": "function", "name": ...}``), a ``function_call_output`` answers a
``function_call`` earlier in the same ``input`` (with ``store: false`` nothing else is remembered), an
assistant message holds ``output_text``/``refusal`` parts and a user message ``input_*`` parts, and
``text.format`` of type ``json_schema`` has a name and a schema.

:func:`schema_text` is an answer that fits a ``json_schema`` format (as the backend's structured
outputs would), and :func:`function_call_events` the events of an answer that calls a tool.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.upstream_wire import response_object, sse_event

USER_PARTS = frozenset({"input_text", "input_image", "input_file"})
ASSISTANT_PARTS = frozenset({"output_text", "refusal"})


def problem(body: dict[str, Any]) -> str | None:
    """The real API's error message for the first rule ``body`` breaks, or None."""
    for index, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, dict) and tool.get("type") == "function" and "name" not in tool:
            return f"Missing required parameter: 'tools[{index}].name'."
    calls: set[str] = set()
    items = body.get("input")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "function_call":
            calls.add(str(item.get("call_id")))
        elif kind == "function_call_output" and item.get("call_id") not in calls:
            return f"No tool call found for function call output with call_id {item.get('call_id')}."
        elif kind == "message":
            allowed = ASSISTANT_PARTS if item.get("role") == "assistant" else USER_PARTS
            for part in item.get("content") if isinstance(item.get("content"), list) else []:
                if isinstance(part, dict) and part.get("type") not in allowed:
                    names = "', '".join(sorted(allowed))
                    return (f"Invalid value: '{part.get('type')}'. Supported values are: '{names}'. "
                            f"(input[{index}].content)")
    fmt = json_format(body)
    if fmt is not None and not (isinstance(fmt.get("name"), str) and isinstance(fmt.get("schema"), dict)):
        return "Missing required parameter: 'text.format.name' or 'text.format.schema'."
    return None


def json_format(body: Any) -> dict[str, Any] | None:
    """The request's ``json_schema`` text format, if it asks for one."""
    text = body.get("text") if isinstance(body, dict) else None
    fmt = text.get("format") if isinstance(text, dict) else None
    return fmt if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None


def schema_text(schema: dict[str, Any], said: str) -> str:
    """A JSON document fitting ``schema`` (objects, arrays, strings, numbers, booleans, enums);
    strings say ``said``."""
    return json.dumps(_instance(schema, said))


def _instance(schema: dict[str, Any], said: str) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _instance(sub, said) for name, sub in props.items()}
    if kind == "array":
        return [_instance(schema.get("items") or {"type": "string"}, said)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return said


def function_call_events(name: str, arguments: str, *, call_id: str, response_id: str, model: str,
                         pieces: int = 3, reasoning: dict[str, Any] | None = None) -> list[bytes]:
    """An answer whose output is a call of tool ``name`` with ``arguments`` (streamed in ``pieces``
    deltas), ending with ``response.completed``; with ``reasoning``, that item comes first."""
    item_id = f"fc_{response_id}"
    started = response_object(response_id, model, "in_progress")
    done = {"id": item_id, "type": "function_call", "status": "completed", "arguments": arguments,
            "call_id": call_id, "name": name}
    step = max(1, -(-len(arguments) // pieces))
    deltas = [arguments[i:i + step] for i in range(0, len(arguments), step)]
    usage = {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 9,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 39}
    first = [] if reasoning is None else [reasoning]
    index = len(first)
    where = {"item_id": item_id, "output_index": index}
    frames: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
        *(("response.output_item.added", {"output_index": 0, "item": {**r, "encrypted_content": None}})
          for r in first),
        *(("response.output_item.done", {"output_index": 0, "item": r}) for r in first),
        ("response.output_item.added", {"output_index": index,
                                        "item": {**done, "status": "in_progress", "arguments": ""}}),
        *(("response.function_call_arguments.delta", {**where, "delta": d}) for d in deltas),
        ("response.function_call_arguments.done", {**where, "arguments": arguments}),
        ("response.output_item.done", {"output_index": index, "item": done}),
        ("response.completed", {"response": {**started, "status": "completed", "output": [*first, done],
                                             "usage": usage}}),
    ]
    return [sse_event(kind, {**data, "sequence_number": n}) for n, (kind, data) in enumerate(frames)]
