"""The Responses WebSocket's messages, classified (pure, no I/O).

Codex CLI sends JSON text messages (``response.create``, ``response.processed``) and reads one JSON
event per message back, the same events as the HTTP stream (openai/codex
``codex-api/src/endpoint/responses_websocket.rs``). Errors come in-band:
``{"type": "error", "status": 429, "error": {...}, "headers": {...}}``; the code
``websocket_connection_limit_reached`` asks the client for a new connection.

:func:`read_request` says what a client message is and whether it may move to another account (a
``previous_response_id`` names state only the connection that made it holds); :func:`read_event`
says what an upstream event means for failover; :func:`for_account` is the message one account may
receive; the ``*_error`` builders are the in-band answers the proxy gives itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tray.proxy.body import without_sealed
from tray.proxy.shaping import TURN_STATE, error_body
from tray.proxy.sse import SSEEvent, StreamError, is_output, stream_error

CREATE = "response.create"
LIMIT_CODE = "websocket_connection_limit_reached"
NOT_FOUND_CODE = "previous_response_not_found"
TERMINAL_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed", "response.done"})
ENTITLEMENT = "usage_not_included"
FAILOVER_KINDS = frozenset({"overloaded", "usage_limit"})  # as on HTTP (tray.proxy.relay)


@dataclass(frozen=True)
class Request:
    """One client message: a ``response.create`` (``obj`` parsed) or anything else, passed on."""

    text: str
    type: str | None
    obj: dict[str, Any] | None

    @property
    def creates(self) -> bool:
        return self.type == CREATE and self.obj is not None

    @property
    def previous_response_id(self) -> str | None:
        value = self.obj.get("previous_response_id") if self.obj is not None else None
        return value if isinstance(value, str) and value else None

    @property
    def movable(self) -> bool:
        """Whether another connection (another account) could answer it: only when it carries the
        whole context, no ``previous_response_id``."""
        return self.previous_response_id is None


def read_request(text: str) -> Request | None:
    """The client message ``text``; None when it is not a JSON object (answered with an error)."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    return Request(text, kind if isinstance(kind, str) else None, obj)


@dataclass(frozen=True)
class Event:
    """One upstream message and what it means before the answer's first output.

    ``kind``: ``"preamble"`` (held back: failover is still possible), ``"output"`` (the answer has
    started; ``terminal`` when it also ends it), ``"failover"`` (an error worth trying another
    account for: a usage limit or rate limit, overload, 5xx), ``"unauthorized"`` (in-band 401),
    ``"limit"`` (the backend's connection-age limit), ``"error"`` (any other error: the client's
    answer)."""

    text: str
    type: str | None
    data: Any
    kind: str
    terminal: bool = False
    status: int | None = None
    error: StreamError | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers an in-band error carries (quota headers of a 429), as strings."""
        raw = self.data.get("headers") if isinstance(self.data, dict) else None
        if not isinstance(raw, dict):
            return {}
        return {str(k).lower(): str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()
                if isinstance(v, str | int | float | bool)}

    @property
    def error_body(self) -> bytes:
        """The error as an HTTP error body (``{"error": {...}}``), for the 429 and cooldown parsers."""
        payload = self.error.payload if self.error is not None else {}
        return json.dumps({"error": payload}).encode()


def _status(data: Any) -> int | None:
    if not isinstance(data, dict):
        return None
    value = data.get("status", data.get("status_code"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Once an answer's output started, only messages holding one of these are read (the end of the
# answer, quota, response ids, reasoning); text deltas, most of the bytes, pass unread. A quoted
# word inside a JSON string is escaped (\"error\"), so the markers only match real keys and values.
MARKERS = ('"error"', '"response.completed"', '"response.failed"', '"response.incomplete"',
           '"response.done"', '"codex.rate_limits"', '"response.created"', '"response.output_item.done"')


def read_event(text: str, *, started: bool = False) -> Event:
    """Classify one upstream message (see :class:`Event`). With ``started`` (the answer's output
    has begun) a message with no :data:`MARKERS` is passed as output without being parsed."""
    if started and not any(marker in text for marker in MARKERS):
        return Event(text, None, None, "output")
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    etype = data.get("type") if isinstance(data, dict) and isinstance(data.get("type"), str) else None
    event = SSEEvent(raw=b"", type=etype, data=data)
    err = stream_error(event)
    status = _status(data)
    if err is None:
        if etype in TERMINAL_TYPES:
            return Event(text, etype, data, "output", terminal=True, status=status)
        return Event(text, etype, data, "output" if is_output(event) else "preamble", status=status)
    if err.code == LIMIT_CODE:
        kind = "limit"
    elif ENTITLEMENT in (err.code, err.payload.get("type")):
        kind = "error"  # the plan lacks Codex: no other account's answer differs, pass it on
    elif status == 401:
        kind = "unauthorized"
    elif err.kind in FAILOVER_KINDS or status == 429 or (status is not None and status >= 500):
        kind = "failover"
    else:
        kind = "error"
    return Event(text, etype, data, kind, terminal=True, status=status, error=err)  # an error ends the answer


def for_account(
    request: Request,
    *,
    turn_state_ok: bool,
    foreign: Callable[[str], bool],
    patch: Mapping[str, Any] | None = None,
) -> tuple[str, int]:
    """The text of ``request`` as one account may receive it, and how many input items were left out.

    ``turn_state_ok``: the turn state in ``client_metadata`` was issued by this account (else it is
    taken out, as the HTTP path drops the header). ``foreign(blob)``: whether an encrypted blob (of a
    reasoning or compaction item) was made by another account (such items are left out: the
    backend cannot read another account's and would refuse the request). ``patch``: top-level fields to set
    (fast mode's ``service_tier``). The text is the client's own when nothing changes."""
    obj = request.obj
    if obj is None:
        return request.text, 0
    changed = dict(obj)
    metadata = obj.get("client_metadata")
    if not turn_state_ok and isinstance(metadata, dict) and TURN_STATE in metadata:
        changed["client_metadata"] = {k: v for k, v in metadata.items() if k != TURN_STATE}
    without, gone = without_sealed(obj, foreign)
    if gone:
        changed["input"] = without["input"]
    if patch:
        changed.update(patch)
    if changed == obj:
        return request.text, 0
    return json.dumps(changed, separators=(",", ":"), ensure_ascii=False), len(gone)


def reasoning_blobs(event: Event) -> list[str]:
    """The encrypted content an answer carries (its reasoning or compaction output items), to
    remember whose it is."""
    data = event.data
    if not isinstance(data, dict):
        return []
    items: list[Any] = []
    if event.type == "response.output_item.done":
        items = [data.get("item")]
    elif event.terminal and isinstance(data.get("response"), dict):
        output = data["response"].get("output")
        items = output if isinstance(output, list) else []
    return [i["encrypted_content"] for i in items if isinstance(i, dict)
            and isinstance(i.get("encrypted_content"), str)]


def response_id(event: Event) -> str | None:
    """The id of the response an event belongs to (``response.created``/``completed``...)."""
    response = event.data.get("response") if isinstance(event.data, dict) else None
    value = response.get("id") if isinstance(response, dict) else None
    return value if isinstance(value, str) and value else None


def error_message(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> str:
    """An in-band error as the backend sends it: ``{"type": "error", "status", "error", "headers"}``
    from an HTTP status and error body (``{"error": {...}}``)."""
    inner = body.get("error") if isinstance(body.get("error"), dict) else dict(body)
    event: dict[str, Any] = {"type": "error", "status": status, "error": inner}
    if headers:
        event["headers"] = dict(headers)
    return json.dumps(event, separators=(",", ":"))


def not_found_error(previous: str) -> str:
    """How the backend answers a ``previous_response_id`` it does not hold: Codex CLI then opens a
    new connection and sends the whole context again."""
    body = error_body(f"Previous response with id '{previous}' not found.", NOT_FOUND_CODE,
                      "invalid_request_error", param="previous_response_id")
    return error_message(400, body)


def bad_message_error(message: str, code: str = "invalid_json", status: int = 400) -> str:
    return error_message(status, error_body(message, code, "invalid_request_error"))
