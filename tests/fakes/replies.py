"""Scripted answers of the fake ChatGPT backend (tests only).

A :class:`Reply` describes one answer to one request; tests queue them per account with
``FakeUpstream.script(account_id, *replies)`` or set an account's default. The constructors below
cover what the real backend does: a normal SSE answer, 429 usage limits (with real bodies and
headers), ``usage_not_included``, 401, 5xx, a Cloudflare HTML 403, a slow first byte, a mid-stream
drop and an in-stream ``server_is_overloaded`` after ``response.created``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Literal

Kind = Literal["ok", "json", "html", "drop", "stream_error", "raw", "tool_call"]


@dataclass(frozen=True)
class Reply:
    kind: Kind = "ok"
    status: int = 200
    body: Any = None  # "json": the JSON body (None: built from the account, 429 bodies); "raw": bytes
    error_type: str | None = None  # "usage_limit_reached", "usage_not_included", 401 code...
    headers: tuple[tuple[str, str], ...] = ()
    text: str | None = None  # None = "Hi from <account id>!"
    deltas: int = 3
    delta_size: int | None = None  # pad every delta to this many characters
    first_byte_delay: float = 0.0  # seconds before the status line goes out
    event_delay: float = 0.0  # seconds between SSE events
    drop_after: int = 0  # "drop": close the connection after this many events
    resets_in: float = 3600.0  # 429 usage limit: seconds until the limit resets
    exhaust: bool = True  # 429 usage limit: the account's usage state becomes "limit reached"
    rate_limits_event: bool = False  # send a codex.rate_limits event before response.created
    turn_state: str | None = None  # x-codex-turn-state response header
    error_style: str = "response.failed"  # "stream_error": "response.failed" or "error"
    usage_headers: bool = True  # send the x-codex-* rate-limit headers
    hold: threading.Event | None = None  # answer only once this is set (or the caller hangs up)
    preamble: bytes = b""  # "ok"/"drop": raw bytes sent before the first event (comments, junk)
    noise: bool = False  # pad deltas with random letters (incompressible) instead of dots
    tool: str | None = None  # "tool_call": the function called (``text`` holds its JSON arguments)

    def but(self, **changes: Any) -> Reply:
        """A copy with some fields changed, e.g. ``ok().but(first_byte_delay=1)``."""
        return replace(self, **changes)


def ok(
    text: str | None = None,
    *,
    deltas: int = 3,
    delta_size: int | None = None,
    first_byte_delay: float = 0.0,
    event_delay: float = 0.0,
    rate_limits_event: bool = False,
    turn_state: str | None = None,
) -> Reply:
    """A complete SSE answer (JSON ``{"output": [...]}`` on the compact route)."""
    return Reply(
        text=text,
        deltas=deltas,
        delta_size=delta_size,
        first_byte_delay=first_byte_delay,
        event_delay=event_delay,
        rate_limits_event=rate_limits_event,
        turn_state=turn_state,
    )


def tool_call(name: str, arguments: str, *, deltas: int = 3) -> Reply:
    """A complete SSE answer whose only output is a call of the function ``name`` with ``arguments``
    (a JSON text, streamed in ``deltas`` pieces)."""
    return Reply(kind="tool_call", tool=name, text=arguments, deltas=deltas)


def slow(delay: float, text: str | None = None) -> Reply:
    """A normal answer whose status line and first byte wait ``delay`` seconds."""
    return ok(text, first_byte_delay=delay)


def usage_limit(
    resets_in: float = 3600.0,
    *,
    retry_after: float | None = None,
    exhaust: bool = True,
    usage_headers: bool = True,
) -> Reply:
    """429 ``usage_limit_reached`` with ``resets_at``/``resets_in_seconds`` in the body, the account's
    ``x-codex-*`` headers (showing the exhausted window when ``exhaust``) and an optional ``Retry-After``.
    With ``exhaust`` the account's usage endpoint reports the limit reached until it resets."""
    headers = () if retry_after is None else (("retry-after", f"{retry_after:g}"),)
    return Reply(
        kind="json",
        status=429,
        error_type="usage_limit_reached",
        resets_in=resets_in,
        exhaust=exhaust,
        headers=headers,
        usage_headers=usage_headers,
    )


def usage_not_included() -> Reply:
    """429 ``usage_not_included``: the plan lacks Codex; an entitlement error, not a rate limit."""
    return Reply(kind="json", status=429, error_type="usage_not_included")


def rate_limited(retry_after: float | None = 30.0, *, usage_headers: bool = False) -> Reply:
    """A plain 429 without a usage-limit body, only ``Retry-After`` (when given)."""
    headers = () if retry_after is None else (("retry-after", f"{retry_after:g}"),)
    body = {"error": {"message": "Rate limit exceeded, please slow down.", "type": "rate_limit_exceeded"}}
    return Reply(kind="json", status=429, body=body, headers=headers, usage_headers=usage_headers)


def unauthorized(code: str = "token_expired") -> Reply:
    """401 as upstream sends it for an expired or invalidated access token."""
    return Reply(kind="json", status=401, error_type=code, usage_headers=False)


def server_error(status: int = 500) -> Reply:
    body = {"error": {"message": "An error occurred while processing your request.", "type": "server_error"}}
    return Reply(kind="json", status=status, body=body, usage_headers=False)


def html_403() -> Reply:
    """A Cloudflare challenge page: 403 with an HTML body."""
    return Reply(kind="html", status=403, usage_headers=False)


def raw(body: bytes, *, status: int = 200, content_type: str = "text/event-stream",
        encoding: str | None = None) -> Reply:
    """Exactly these body bytes (already compressed when ``encoding`` is given; the wire adds no
    compression of its own then): a broken or hostile backend."""
    headers = [("content-type", content_type)]
    if encoding is not None:
        headers.append(("content-encoding", encoding))
    return Reply(kind="raw", status=status, body=body, headers=tuple(headers), usage_headers=False)


def drop(after: int = 4, *, deltas: int = 3, event_delay: float = 0.0) -> Reply:
    """A 200 SSE stream whose connection closes after ``after`` events, with no ``response.completed``."""
    return Reply(kind="drop", drop_after=after, deltas=deltas, event_delay=event_delay)


def overloaded(style: str = "response.failed") -> Reply:
    """A 200 stream: ``response.created`` then a ``server_is_overloaded`` failure event."""
    return stream_error("server_is_overloaded", "Our servers are currently overloaded.", style=style)


def stream_error(code: str, message: str, *, style: str = "response.failed") -> Reply:
    """A 200 stream: ``response.created`` then ``response.failed`` (or ``error``) with ``code``."""
    return Reply(kind="stream_error", error_type=code, text=message, error_style=style)
