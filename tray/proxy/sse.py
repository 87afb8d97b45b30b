"""Server-sent events, parsed incrementally from byte chunks (pure, no I/O).

The proxy passes upstream streams through byte for byte, so every :class:`SSEEvent` keeps the exact
bytes it was parsed from (``raw``) next to its ``type`` and decoded JSON ``data``. Classification
helpers say whether an event is real output (after which the proxy may no longer fail over) or a
stream error worth failing over for (``server_is_overloaded``, usage limits).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Events a stream opens with before any output; held back so an early error can still fail over.
PREAMBLE_TYPES = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.queued",
        "codex.rate_limits",
        "codex.response.metadata",
        "response.metadata",
    }
)
ERROR_TYPES = frozenset({"error", "response.failed"})
OVERLOAD_CODES = frozenset({"server_is_overloaded", "slow_down", "service_unavailable", "server_error"})
LIMIT_CODES = frozenset({"usage_limit_reached", "rate_limit_exceeded", "rate_limit_reached"})


@dataclass(frozen=True)
class SSEEvent:
    raw: bytes  # the exact bytes of this event, including its terminating blank line
    type: str | None  # the JSON ``type`` field, else the ``event:`` field
    data: Any  # decoded JSON of the ``data:`` lines, or None (comments, [DONE], non-JSON)


@dataclass(frozen=True)
class StreamError:
    """An error reported inside a 200 stream."""

    kind: str  # "overloaded" | "usage_limit" | "other"
    code: str | None
    message: str | None
    payload: dict[str, Any]  # the error object itself (for cooldown parsing)


LF_END = b"\n\n"
CR_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")
LONGEST_END = max(len(sep) for sep in CR_ENDS)


def parse_event(raw: bytes) -> SSEEvent:
    """Parse one event's bytes (as split by :class:`SSEParser`)."""
    event_name: str | None = None
    data_lines: list[str] = []
    text = raw.decode("utf-8", errors="replace")
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event_name = value
        elif field == "data":
            data_lines.append(value)
    data: Any = None
    if data_lines:
        joined = "\n".join(data_lines)
        try:
            data = json.loads(joined)
        except ValueError:
            data = None
    etype = event_name
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        etype = data["type"]
    return SSEEvent(raw=raw, type=etype, data=data)


class SSEParser:
    """Feed byte chunks, get complete events back; partial events wait for more bytes.

    ``want(raw)`` may say which events are worth decoding; the others come back with only their
    bytes (``type``/``data`` None), which keeps a pass-through observer cheap.

    Work is linear in the bytes fed: a partial event is kept in one growing buffer, and the search
    for the blank line that ends it resumes where the last feed stopped instead of starting over
    (``scanned`` counts the bytes searched, so a test can hold the parser to that).
    """

    def __init__(self, want: Callable[[bytes], bool] | None = None) -> None:
        self._buffer = bytearray()
        self._resume = 0  # the pending bytes before this offset hold no event end
        self._cr = False  # the pending bytes hold a \r (then three kinds of blank line count)
        self._want = want
        self.scanned = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer
        buffer += chunk
        self._cr = self._cr or b"\r" in chunk
        self.scanned += len(chunk)
        found: dict[bytes, int] = {}  # per separator: its first index at or after the last search
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = self._event_end(buffer, start, found)
            if end < 0:
                break
            raw = bytes(buffer[start:end])
            start = end
            if self._want is None or self._want(raw):
                events.append(parse_event(raw))
            else:
                events.append(SSEEvent(raw=raw, type=None, data=None))
        if start:
            del buffer[:start]  # cheap: bytearray drops a prefix without moving the rest each time
            self._cr = b"\r" in buffer
            self.scanned += len(buffer)
        # A blank line may straddle this chunk and the next: search its last few bytes again.
        self._resume = max(0, len(buffer) - LONGEST_END + 1)
        return events

    def _event_end(self, buffer: bytearray, start: int, found: dict[bytes, int]) -> int:
        """Index just past the blank line ending the event that starts at ``start``, or -1."""
        best, best_len = -1, 0
        for sep in CR_ENDS if self._cr else (LF_END,):
            at = found.get(sep)
            if at is None or 0 <= at < start:
                origin = max(start, self._resume)
                at = buffer.find(sep, origin)
                self.scanned += (at + len(sep) if at >= 0 else len(buffer)) - origin
                found[sep] = at
            if at >= 0 and (best < 0 or at < best):
                best, best_len = at, len(sep)
        return -1 if best < 0 else best + best_len

    def flush(self) -> SSEEvent | None:
        """The trailing bytes of a stream that ended without a final blank line, if any."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._resume, self._cr = 0, False
        if not rest.strip():
            return None
        return parse_event(rest)

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)


def is_comment(event: SSEEvent) -> bool:
    """True for a block of comment lines only (``: keep-alive``)."""
    return event.raw[:1] == b":" and event.data is None and all(
        line.startswith(b":") for line in event.raw.replace(b"\r", b"\n").split(b"\n") if line
    )


def is_preamble(event: SSEEvent) -> bool:
    """True for events that precede output (and for comments / keep-alives with no type)."""
    return event.type is None or event.type in PREAMBLE_TYPES


def _error_object(event: SSEEvent) -> dict[str, Any] | None:
    data = event.data
    if not isinstance(data, dict):
        return None
    if event.type == "response.failed":
        response = data.get("response")
        if isinstance(response, dict) and isinstance(response.get("error"), dict):
            return dict(response["error"])
        return {}
    if event.type == "error":
        inner = data.get("error")
        if isinstance(inner, dict):
            return dict(inner)
        return {k: v for k, v in data.items() if k != "type"}
    return None


def stream_error(event: SSEEvent) -> StreamError | None:
    """Classify an in-stream error event; None when ``event`` is not an error."""
    if event.type not in ERROR_TYPES:
        return None
    err = _error_object(event) or {}
    code = err.get("code") if isinstance(err.get("code"), str) else None
    etype = err.get("type") if isinstance(err.get("type"), str) else None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    names = {n for n in (code, etype) if n}
    if names & OVERLOAD_CODES:
        kind = "overloaded"
    elif names & LIMIT_CODES:
        kind = "usage_limit"
    else:
        kind = "other"
    return StreamError(kind=kind, code=code or etype, message=message, payload=err)


def is_output(event: SSEEvent) -> bool:
    """True once an event carries the answer (or ends it): failover is impossible after it."""
    return not is_preamble(event) and event.type not in ERROR_TYPES


def completed_response(event: SSEEvent) -> dict[str, Any] | None:
    """The final response object of a ``response.completed`` / ``.incomplete`` / ``.failed`` event."""
    if event.type not in {"response.completed", "response.incomplete", "response.failed", "response.done"}:
        return None
    if isinstance(event.data, dict) and isinstance(event.data.get("response"), dict):
        return dict(event.data["response"])
    return None
