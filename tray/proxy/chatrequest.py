"""A Chat Completions request (``POST /v1/chat/completions``) as a Responses request (pure).

:func:`responses_body` turns the chat body into the ``/v1/responses`` body it means; the proxy then
shapes that like any ``/v1/responses`` body (:func:`tray.shaping.shape_v1_body`: streaming upstream,
``store: false``, unsupported parameters dropped with a log line). The mapping:

| Chat Completions | Responses |
| --- | --- |
| ``system`` / ``developer`` messages | ``instructions`` (joined by blank lines, in order) |
| ``user``: text, ``image_url``, ``file`` parts | ``message``: ``input_text``, ``_image``, ``_file`` |
| ``assistant`` message: ``content`` / ``tool_calls`` | ``message`` (``output_text``) / ``function_call`` |
| ``tool`` message | ``function_call_output`` item (its ``tool_call_id`` as ``call_id``) |
| ``tools`` (``{"type": "function", "function": {...}}``) | ``tools`` (``{"type": "function", "name"...}``) |
| ``tool_choice`` ``{"type": "function", "function": {"name"}}`` | ``{"type": "function", "name"}`` |
| ``response_format`` (``json_schema`` / ``json_object`` / ``text``) | ``text.format`` |
| ``reasoning_effort``, ``verbosity`` | ``reasoning.effort``, ``text.verbosity`` |
| ``stream``, ``stream_options.include_usage`` | :class:`ChatOptions` (the answer's shape) |

Everything else (``max_tokens``, ``temperature``...) is carried over by name for the shaping step
to keep or drop. A request that cannot mean anything upstream (no messages, ``n`` above 1, a tool
type other than functions, audio input) is :class:`ChatRequestError` (the client gets 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tray.errors import PoolError

# Chat parameters with no Responses counterpart: dropped here and named in the log line.
DROPPED = ("stop", "logit_bias", "modalities", "audio", "prediction", "functions", "function_call",
           "web_search_options", "metadata", "safety_identifier")
# Carried over by name; the shaping step drops those the Codex backend refuses (with its log line).
CARRIED = ("model", "parallel_tool_calls", "prompt_cache_key", "service_tier", "store", "user",
           "temperature", "top_p", "max_tokens", "max_completion_tokens", "frequency_penalty",
           "presence_penalty", "seed", "logprobs", "top_logprobs")


class ChatRequestError(PoolError):
    """A Chat Completions request the proxy cannot translate; the message says why (400)."""


@dataclass(frozen=True)
class ChatOptions:
    """What the client asked of the answer's shape."""

    stream: bool = False
    include_usage: bool = False  # streaming: a last chunk with usage before [DONE]


def responses_body(chat: dict[str, Any]) -> tuple[dict[str, Any], list[str], ChatOptions]:
    """The Responses body ``chat`` means, the chat-only parameters dropped, and the answer options.

    The caller's object is not changed."""
    n = chat.get("n")
    if n is not None and n != 1:
        raise ChatRequestError("codex-pool answers one choice per request; leave n out or set it to 1.")
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError("'messages' must be a non-empty list of chat messages.")
    instructions, items = _conversation(messages)
    body: dict[str, Any] = {name: chat[name] for name in CARRIED if name in chat}
    body["instructions"] = instructions
    body["input"] = items
    body["stream"] = chat.get("stream") is True
    if "tools" in chat:
        body["tools"] = _tools(chat["tools"])
    if "tool_choice" in chat:
        body["tool_choice"] = _tool_choice(chat["tool_choice"])
    text = _text(chat.get("response_format"), chat.get("verbosity"))
    if text:
        body["text"] = text
    effort = chat.get("reasoning_effort")
    if isinstance(effort, str):
        body["reasoning"] = {"effort": effort}
    dropped = [name for name in DROPPED if name in chat]
    usage = chat.get("stream_options")
    options = ChatOptions(stream=chat.get("stream") is True,
                          include_usage=isinstance(usage, dict) and usage.get("include_usage") is True)
    return body, dropped, options


def _conversation(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ChatRequestError(f"messages[{index}] must be an object.")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_plain(message.get("content"), f"messages[{index}]"))
        elif role == "user":
            items.append({"type": "message", "role": "user",
                          "content": _user_parts(message.get("content"), index)})
        elif role == "assistant":
            items += _assistant(message, index)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ChatRequestError(f"messages[{index}] (a tool message) needs its tool_call_id.")
            output = _plain(message.get("content"), f"messages[{index}]")
            items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        else:
            raise ChatRequestError(f"messages[{index}] has role {role!r}; codex-pool takes system, "
                                   "developer, user, assistant and tool messages.")
    return "\n\n".join(part for part in system if part), items


def _plain(content: Any, where: str) -> str:
    """A message's text: a string, or the text parts of a list joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") == "refusal":
                texts.append(str(part.get("refusal", "")))
            else:
                raise ChatRequestError(f"{where} may only hold text parts here.")
        return "".join(texts)
    raise ChatRequestError(f"{where}: content must be a string or a list of parts.")


def _user_parts(content: Any, index: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    if not isinstance(content, list):
        raise ChatRequestError(f"messages[{index}]: content must be a string or a list of parts.")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "input_text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise ChatRequestError(f"messages[{index}]: an image_url part needs its url.")
            detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
            parts.append({"type": "input_image", "image_url": url, "detail": detail})
        elif kind == "file":
            file = part.get("file") if isinstance(part.get("file"), dict) else {}
            parts.append({"type": "input_file", **{k: v for k, v in file.items()
                                                   if k in ("file_data", "file_id", "filename")}})
        else:
            raise ChatRequestError(f"messages[{index}] has a {kind!r} part; codex-pool takes text, "
                                   "image_url and file parts.")
    return parts


def _assistant(message: dict[str, Any], index: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    text = _plain(message.get("content"), f"messages[{index}]")
    if text:
        items.append({"type": "message", "role": "assistant",
                      "content": [{"type": "output_text", "text": text}]})
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ChatRequestError(f"messages[{index}]: tool_calls must be a list.")
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise ChatRequestError(f"messages[{index}]: each tool call needs an id and a function.")
        arguments = function.get("arguments", "")
        items.append({"type": "function_call", "call_id": call["id"], "name": str(function.get("name", "")),
                      "arguments": arguments if isinstance(arguments, str) else ""})
    return items


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise ChatRequestError("'tools' must be a list.")
    out: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ChatRequestError("codex-pool takes function tools only "
                                   '({"type": "function", "function": {"name": ...}}).')
        out.append({"type": "function", **{k: v for k, v in function.items()
                                           if k in ("name", "description", "parameters", "strict")}})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        return {"type": "function", "name": name}
    return choice


def _text(response_format: Any, verbosity: Any) -> dict[str, Any]:
    text: dict[str, Any] = {}
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            spec = spec if isinstance(spec, dict) else {}
            text["format"] = {"type": "json_schema", **{k: v for k, v in spec.items()
                                                        if k in ("name", "description", "schema", "strict")}}
        elif kind in ("json_object", "text"):
            text["format"] = {"type": kind}
        else:
            raise ChatRequestError(f"response_format type {kind!r} is not supported; use text, "
                                   "json_object or json_schema.")
    if isinstance(verbosity, str):
        text["verbosity"] = verbosity
    return text
