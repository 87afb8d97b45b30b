"""Limits that keep anyone who can reach the proxy's port from stalling it without the key.

uvicorn has an idle keep-alive timeout (used) and a concurrency limit, but with the httptools parser
it has no header read timeout and no header size or count limit, and its concurrency limit answers
503 only once a request has been read. :class:`BoundedHttp` adds those, narrowly, on top of uvicorn's
own protocol:

* the request head (request line and headers) must arrive within ``header_timeout`` seconds of the
  connection opening or of its first byte (408; a connection that sent nothing is just closed), so
  idle and trickling sockets cannot pile up;
* at most ``max_header_bytes`` of head are read (431): the rest is never buffered, so a 64 MB header
  costs 64 KB; at most ``max_headers`` headers (431);
* at most ``max_connections`` connections are open; one past that is answered 503 with
  ``Retry-After`` at once and closed.

A refused connection gets its answer, then a half-close, and what it still sends is read and
dropped for ``linger`` seconds, so the answer is not lost to a reset. :func:`harden_process` raises
the soft open-files limit (macOS starts processes at 256) and turns core dumps off (a dump would hold
every account's tokens).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

WANTED_OPEN_FILES = 8192
RESERVED_FILES = 64  # the pool file, logs, the loop, the single-instance socket...
MAC_OPEN_MAX = 10240  # macOS refuses a soft limit above OPEN_MAX even when the hard one is unlimited
REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 5.0  # seconds for a request's head to arrive
    keep_alive: int = 5  # seconds an idle keep-alive connection stays open (uvicorn takes whole seconds)
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_connections: int = 1000  # lowered to what the open-files limit allows
    linger: float = 2.0  # seconds a refused connection is drained before it is closed


def harden_process(wanted: int = WANTED_OPEN_FILES) -> int:
    """Turn core dumps off and raise the soft open-files limit toward ``wanted`` (never above the
    hard limit). Returns the soft open-files limit now in force (``wanted`` where there is none)."""
    if sys.platform == "win32":  # no such limits to raise, and no core files
        return wanted
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (OSError, ValueError) as exc:
        log.info("Could not turn core dumps off: %s", exc)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if sys.platform == "darwin":
        target = min(target, MAC_OPEN_MAX)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.info("Could not raise the open-files limit from %d: %s", soft, exc)
    return wanted if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(open_files: int, wanted: int) -> int:
    """Connections the proxy may hold: each may need an upstream connection too, and some files
    stay for everything else."""
    return max(8, min(wanted, (open_files - RESERVED_FILES) // 2))


class _Warnings:
    """At most one warning per kind a minute: a flood must not flood the log."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -60.0) >= 60.0:
            self.last[kind] = now
            log.warning(message, *args)


WARNINGS = _Warnings()


class BoundedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; ``limits`` is set by :func:`protocol_for`."""

    limits = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            WARNINGS.warn("connections", "Refusing connections: %d are open, the most codex-pool takes. "
                          "Something on this machine may be flooding it.", len(self.connections) - 1)
            self._refuse(503, "codex-pool has too many open connections; try again shortly.", "too_busy")
            return
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        limit = self.limits.max_header_bytes
        while data and not self._refused and not self.transport.is_closing():
            if not self._in_head:
                super().data_received(data)
                return
            if self._head_timer is None:
                self._start_head_timer()
            room = max(0, limit - self._head_bytes)
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self._in_head and self._head_bytes >= limit and not self._refused:
                WARNINGS.warn("head", "Refused a request whose headers were over %d bytes.", limit)
                self._refuse(431, "The request headers are too large.", "headers_too_large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        if len(self.headers) > self.limits.max_headers:
            WARNINGS.warn("count", "Refused a request with more than %d headers.", self.limits.max_headers)
            self._refuse(431, "The request has too many headers.", "too_many_headers")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0  # the next request's head, when it comes

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self._refused or self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # opened and never used (or idle before its next request)
            return
        self._refuse(408, "The request headers did not arrive in time.", "header_timeout")

    def _refuse(self, status: int, message: str, code: str) -> None:
        self._refused = True
        self._stop_head_timer()
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": code}})
        head = (f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n")
        if status == 503:
            head += "retry-after: 2\r\n"
        self.transport.write((head + "\r\n" + body).encode())
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(self.limits.linger, self.transport.close)


def protocol_for(limits: Limits) -> type[BoundedHttp]:
    """A :class:`BoundedHttp` class bound to ``limits`` (uvicorn takes a protocol class)."""
    return type("BoundedHttp", (BoundedHttp,), {"limits": limits})
