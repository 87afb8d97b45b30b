"""What chatgpt.com's Codex backend puts on the wire, as pure builders (tests only).

SSE events in the order Codex CLI 0.169.0 and the OpenAI SDK accept, usage payloads as
``GET /backend-api/wham/usage`` returns them, the ``x-codex-*`` rate-limit headers derived from a usage
payload, the ``codex.rate_limits`` stream event, and the 401/429 error bodies. Facts come from
``/work/shared/reference`` (testing-gui-and-clients.md §4, codex-protocol-and-peers.md §4).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

PRIMARY_WINDOW_S = 5 * 3600
SECONDARY_WINDOW_S = 7 * 24 * 3600


def sse_event(event_type: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: ``event: <type>\\ndata: <json>\\n\\n``; ``type`` is also set inside the data."""
    payload = {"type": event_type, **data}
    return f"event: {event_type}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Split an SSE byte stream into ``(event type, data)`` pairs (frames without data are skipped)."""
    events: list[tuple[str, dict[str, Any]]] = []
    for frame in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", []
        for line in frame.decode().split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            body = json.loads("\n".join(data))
            events.append((name or str(body.get("type", "")), body))
    return events


def window(used: float, window_s: int, reset_after_s: float | None, now: float) -> dict[str, Any]:
    reset_after = window_s if reset_after_s is None else reset_after_s
    return {
        "used_percent": used,
        "limit_window_seconds": window_s,
        "reset_after_seconds": int(reset_after),
        "reset_at": round(now + reset_after),
    }


def usage_payload(
    *,
    primary_used: float = 0.0,
    primary_window_s: int = PRIMARY_WINDOW_S,
    primary_reset_after_s: float | None = None,
    secondary_used: float = 0.0,
    secondary_window_s: int | None = SECONDARY_WINDOW_S,
    secondary_reset_after_s: float | None = None,
    plan_type: str = "plus",
    account_id: str | None = None,
    allowed: bool = True,
    limit_reached: bool = False,
    has_credits: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """A ``wham/usage`` payload. A reset-after of ``None`` means "the whole window" (a dormant window
    when its used percent is 0); ``secondary_window_s=None`` leaves the secondary window out."""
    at = time.time() if now is None else now
    rate_limit: dict[str, Any] = {
        "allowed": allowed,
        "limit_reached": limit_reached,
        "primary_window": window(primary_used, primary_window_s, primary_reset_after_s, at),
        "secondary_window": None,
    }
    if secondary_window_s is not None:
        rate_limit["secondary_window"] = window(
            secondary_used, secondary_window_s, secondary_reset_after_s, at
        )
    payload: dict[str, Any] = {
        "plan_type": plan_type,
        "rate_limit": rate_limit,
        "credits": {"has_credits": has_credits, "unlimited": False, "balance": "0"},
    }
    if account_id is not None:
        payload["account_id"] = account_id
    return payload


def _windows(usage: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    limit = usage.get("rate_limit") or {}
    found = []
    for slot in ("primary", "secondary"):
        win = limit.get(f"{slot}_window")
        if isinstance(win, dict):
            found.append((slot, win))
    return found


def rate_limit_headers(usage: dict[str, Any]) -> dict[str, str]:
    """The ``x-codex-*`` headers upstream sends with every Codex response, from a usage payload."""
    headers: dict[str, str] = {}
    for slot, win in _windows(usage):
        headers[f"x-codex-{slot}-used-percent"] = f"{float(win.get('used_percent', 0)):g}"
        headers[f"x-codex-{slot}-window-minutes"] = str(int(win.get("limit_window_seconds", 0)) // 60)
        headers[f"x-codex-{slot}-reset-at"] = str(int(win.get("reset_at", 0)))
        headers[f"x-codex-{slot}-reset-after-seconds"] = str(int(win.get("reset_after_seconds", 0)))
    if "plan_type" in usage:
        headers["x-codex-plan-type"] = str(usage["plan_type"])
    credits = usage.get("credits") or {}
    headers["x-codex-credits-has-credits"] = "true" if credits.get("has_credits") else "false"
    headers["x-codex-credits-unlimited"] = "true" if credits.get("unlimited") else "false"
    return headers


def rate_limits_event(usage: dict[str, Any]) -> bytes:
    """The ``codex.rate_limits`` stream event carrying the same facts as the headers."""
    limits = {
        slot: {
            "used_percent": win.get("used_percent", 0),
            "window_minutes": int(win.get("limit_window_seconds", 0)) // 60,
            "reset_at": win.get("reset_at"),
        }
        for slot, win in _windows(usage)
    }
    data = {
        "plan_type": usage.get("plan_type"),
        "rate_limits": limits,
        "credits": usage.get("credits"),
    }
    return sse_event("codex.rate_limits", data)


def blocking_reset(usage: dict[str, Any], now: float) -> float | None:
    """When an exhausted account becomes usable again, or ``None`` if it is not exhausted now."""
    limit = usage.get("rate_limit") or {}
    resets = [
        float(win.get("reset_at", now))
        for _, win in _windows(usage)
        if float(win.get("used_percent", 0)) >= 100 and float(win.get("reset_at", now)) > now
    ]
    if resets:
        return max(resets)
    if limit.get("allowed") is False or limit.get("limit_reached") is True:
        later = [
            float(w.get("reset_at", now)) for _, w in _windows(usage) if float(w.get("reset_at", 0)) > now
        ]
        return min(later) if later else now + 3600
    return None


def live_usage(usage: dict[str, Any], now: float) -> dict[str, Any]:
    """``usage`` as upstream would report it at ``now``: a used window counts its reset down, and a
    window whose reset time passed starts over (0 % used, a full window to go, limits lifted)."""
    out: dict[str, Any] = copy.deepcopy(usage)
    limit = out.get("rate_limit") or {}
    reset_any = False
    for _, win in _windows(out):
        if float(win.get("used_percent", 0)) <= 0 or "reset_at" not in win:
            continue
        left = float(win["reset_at"]) - now
        if left <= 0:
            length = int(win.get("limit_window_seconds", 0))
            win.update(used_percent=0, reset_after_seconds=length, reset_at=round(now + length))
            reset_any = True
        else:
            win["reset_after_seconds"] = round(left)
    if reset_any and not any(float(w.get("used_percent", 0)) >= 100 for _, w in _windows(out)):
        limit["allowed"], limit["limit_reached"] = True, False
    return out


def exhausted(usage: dict[str, Any], resets_in: float, now: float) -> dict[str, Any]:
    """``usage`` with its primary window used up until ``now + resets_in`` (what a 429 implies)."""
    out: dict[str, Any] = copy.deepcopy(usage)
    limit = out.setdefault("rate_limit", {})
    limit["allowed"] = False
    limit["limit_reached"] = True
    win = limit.get("primary_window") or window(0, PRIMARY_WINDOW_S, None, now)
    win.update(used_percent=100, reset_after_seconds=int(resets_in), reset_at=round(now + resets_in))
    limit["primary_window"] = win
    return out


def usage_limit_body(plan_type: str, resets_in: float, now: float) -> dict[str, Any]:
    return {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": plan_type,
            "resets_at": round(now + resets_in),
            "resets_in_seconds": int(resets_in),
        }
    }


def usage_not_included_body(plan_type: str) -> dict[str, Any]:
    return {
        "error": {
            "type": "usage_not_included",
            "message": "Codex is not included in your plan. Upgrade to use Codex.",
            "plan_type": plan_type,
        }
    }


def unauthorized_body(code: str = "token_expired") -> dict[str, Any]:
    messages = {
        "token_expired": "Provided authentication token is expired. Please try signing in again.",
        "token_invalidated": "Your authentication token has been invalidated. Please try signing in again.",
    }
    message = messages.get(code, "Could not validate your credentials.")
    return {"error": {"message": message, "type": None, "code": code, "param": None}, "status": 401}


CLOUDFLARE_HTML = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head>'
    "<body><noscript>Enable JavaScript and cookies to continue</noscript>"
    '<div id="cf-chl-widget"></div></body></html>'
)


def response_object(response_id: str, model: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": status,
        "output": [],
        **extra,
    }


def reasoning_item(response_id: str, blob: str) -> dict[str, Any]:
    """An encrypted reasoning output item, as the backend sends it when the request's ``include``
    asks for ``reasoning.encrypted_content`` (only the account that made ``blob`` can read it)."""
    return {"id": f"rs_{response_id}", "type": "reasoning", "summary": [], "encrypted_content": blob}


def response_events(
    pieces: list[str], *, response_id: str, model: str, service_tier: str | None = None,
    reasoning: dict[str, Any] | None = None,
) -> list[bytes]:
    """A whole successful answer: created, in_progress, item/part added, one delta per piece, then the
    done events and ``response.completed`` with usage, numbered by ``sequence_number``. With
    ``reasoning``, that item comes first (output index 0), ahead of the message, as the backend
    sends it."""
    text = "".join(pieces)
    item_id = f"msg_{response_id}"
    extra = {} if service_tier is None else {"service_tier": service_tier}
    started = response_object(response_id, model, "in_progress", **extra)
    part_done = {"type": "output_text", "text": text, "annotations": []}
    item_done = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part_done],
    }
    out_tokens = max(1, len(text) // 4)
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12 + out_tokens,
    }
    first = [] if reasoning is None else [reasoning]
    index = len(first)
    completed = {**started, "status": "completed", "output": [*first, item_done], "usage": usage}
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    frames: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
        # A reasoning item is announced (without its content) and then done, as the backend does;
        # clients such as opencode refuse a "done" for an item that was never added.
        *(("response.output_item.added", {"output_index": 0, "item": {**r, "encrypted_content": None}})
          for r in first),
        *(("response.output_item.done", {"output_index": 0, "item": r}) for r in first),
        (
            "response.output_item.added",
            {
                "output_index": index,
                "item": {**item_done, "status": "in_progress", "content": []},
            },
        ),
        ("response.content_part.added", {**where, "part": {**part_done, "text": ""}}),
        *(("response.output_text.delta", {**where, "delta": p, "logprobs": []}) for p in pieces),
        ("response.output_text.done", {**where, "text": text, "logprobs": []}),
        ("response.content_part.done", {**where, "part": part_done}),
        ("response.output_item.done", {"output_index": index, "item": item_done}),
        ("response.completed", {"response": completed}),
    ]
    return [sse_event(name, {**data, "sequence_number": n}) for n, (name, data) in enumerate(frames)]


def failed_events(code: str, message: str, *, response_id: str, model: str, style: str) -> list[bytes]:
    """``response.created`` followed by an in-stream error: a ``response.failed`` event (``style``
    "response.failed") or a bare ``error`` event (``style`` "error"), as upstream sends inside a 200."""
    started = response_object(response_id, model, "in_progress")
    error = {"code": code, "message": message}
    if style == "error":
        tail = sse_event("error", {**error, "param": None, "sequence_number": 1})
    else:
        failed = {**started, "status": "failed", "error": error}
        tail = sse_event("response.failed", {"response": failed, "sequence_number": 1})
    return [sse_event("response.created", {"response": started, "sequence_number": 0}), tail]


def split_text(text: str, count: int, size: int | None = None) -> list[str]:
    """``text`` cut into ``count`` deltas; with ``size``, every delta is padded to ``size`` characters
    (the first carries the text) so benchmarks can set the event size."""
    count = max(1, count)
    if size is not None:
        head = text[:size].ljust(size, ".")
        return [head] + ["." * size] * (count - 1)
    step = max(1, -(-len(text) // count))
    pieces = [text[i : i + step] for i in range(0, len(text), step)]
    return pieces + [""] * (count - len(pieces))
