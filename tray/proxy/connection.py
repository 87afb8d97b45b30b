"""One upstream HTTP/1.1 connection whose answers are parsed in C (httptools), for the responses
stream.

httpx reads a response through httpcore and h11: one Python ``Data`` event per chunk of a chunked
body, each passed up several async generators. The backend writes one chunk per SSE event, so a
400-event answer cost about 3 ms of the proxy's CPU in that reader alone, the largest single item in
its profile. :class:`Connection` is an :class:`asyncio.Protocol`: httptools (the parser uvicorn
uses) calls back with the body's bytes as they come off the socket, and a reader takes everything
that arrived since its last read at once.

A connection carries one request at a time: :meth:`Connection.send` writes the request (its head
and body in one ``writelines``, the body not copied) and waits for the answer's head;
:meth:`Connection.read` returns the body's next bytes (``b""`` at its end). Errors are httpx's own
(``ReadTimeout``, ``RemoteProtocolError``...), so callers handle them as they handle httpx's.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httptools
import httpx

HIGH_WATER = 256 * 1024  # unread body bytes at which reading from the socket pauses
_CLOSED = "upstream closed the connection"


class Connection(asyncio.Protocol):
    """An HTTP/1.1 client connection; see the module docstring. ``reusable`` after an answer that
    was read to its end on a connection both sides keep open."""

    def __init__(self, origin: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost: BaseException | None = None  # set once the socket is gone
        self.idle_since = loop.time()
        self._request: httpx.Request | None = None
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[bool] | None = None
        self._parts: list[bytes] = []
        self._unread = 0
        self._complete = False
        self._keep_alive = False
        self._until_close = False  # an answer without a length: it ends when the connection does
        self._waiter: asyncio.Future[bool] | None = None
        self._paused = False
        self._drained: asyncio.Future[bool] | None = None

    # ---- the protocol (called by the event loop) ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._request is None:  # bytes while idle: nothing we asked for, so nothing to trust
            self._fail(httpx.RemoteProtocolError("upstream sent data on an idle connection"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:  # raised by on_message_begin: see there
            self._fail(httpx.RemoteProtocolError("upstream sent an answer nobody asked for"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"upstream sent a malformed answer ({exc})",
                                                 request=self._request))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._until_close and self._head is None and not self._complete:
            self._complete = True  # the end of an answer framed by the connection's end
            self._wake()
        self._fail(httpx.ReadError(_CLOSED if exc is None else f"{_CLOSED} ({exc})", request=self._request))

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        _wake(drained)

    # ---- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: its bytes must not join the first
            raise _Unasked

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))  # as h11 hands them out

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        if 100 <= self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._status, self._reason, self._headers = 0, b"", []
            return
        names = {name for name, _ in self._headers}
        self._until_close = b"content-length" not in names and b"transfer-encoding" not in names
        head, self._head = self._head, None
        _wake(head)

    def on_body(self, body: bytes) -> None:
        self._parts.append(body)
        self._unread += len(body)
        if self._unread >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._status:  # not the end of an interim answer
            self._complete = True
            self._keep_alive = self.parser.should_keep_alive()  # only valid inside this callback
            self._wake()

    # ---- what the pool calls --------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return (self.lost is None and self._complete and self._keep_alive and not self._until_close
                and not self._parts)

    async def send(self, request: httpx.Request, head: bytes, body: bytes, timeouts: dict[str, Any]
                   ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Write the request; the answer's status, reason phrase and headers once they arrived."""
        if self.lost is not None or self.transport is None:
            raise httpx.ReadError(_CLOSED, request=request)
        self._request = request
        self._status, self._reason, self._headers = 0, b"", []
        self._parts, self._unread, self._complete, self._until_close = [], 0, False, False
        self._keep_alive = False
        self._head = self.loop.create_future()
        self.transport.writelines((head, body) if body else (head,))
        if self._drained is not None and not await self._wait(self._drained, timeouts.get("write")):
            raise httpx.WriteTimeout("upstream took no data for the write timeout", request=request)
        if self._head is not None and not await self._wait(self._head, timeouts.get("read")):
            raise httpx.ReadTimeout("upstream sent no answer within the read timeout", request=request)
        if not self._status:
            raise self.lost or httpx.ReadError(_CLOSED, request=request)
        return self._status, self._reason, self._headers

    async def read(self, timeout: float | None) -> bytes:
        """Every body byte that arrived since the last read (waiting for some); ``b""`` at the end.
        Raises ``ReadError`` when the connection breaks before the body's end."""
        while not self._parts:
            if self._complete:
                return b""
            if self.lost is not None:
                raise self.lost
            self._waiter = self.loop.create_future()
            if not await self._wait(self._waiter, timeout):
                raise httpx.ReadTimeout(f"upstream sent nothing for {timeout:g} s", request=self._request)
        parts, self._parts, self._unread = self._parts, [], 0
        if self._paused and self.transport is not None and self.lost is None:
            self._paused = False
            self.transport.resume_reading()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def done(self) -> None:
        """The answer is over (read or given up): let go of the request (its body may be megabytes,
        and an idle connection must not keep it alive)."""
        self._request = None
        self._headers = []

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # nothing of ours is left to send; a half-read answer is dropped
        if self.lost is None:
            self.lost = httpx.ReadError(_CLOSED, request=self._request)

    # ---- inside ---------------------------------------------------------------------------------

    async def _wait(self, future: asyncio.Future[bool], timeout: float | None) -> bool:
        """Whether ``future`` was woken (by data, the end or a failure: the caller looks which)
        before ``timeout`` passed."""
        if timeout is None:
            return await future
        timer = self.loop.call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        _wake(waiter)

    def _fail(self, exc: httpx.TransportError) -> None:
        if self.lost is None:
            self.lost = exc
        for future in (self._head, self._waiter, self._drained):
            _wake(future)
        self._head = self._waiter = self._drained = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class _Unasked(Exception):
    """An answer began after the one the request asked for had ended."""


def _wake(future: asyncio.Future[bool] | None) -> None:
    if future is not None and not future.done():
        future.set_result(True)


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)
