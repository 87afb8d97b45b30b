"""Moving one upstream response to the client.

:func:`open_stream` reads an SSE answer only up to its first real output event, so an error event
that arrives before any output (``server_is_overloaded``, a usage limit) can still fail over to the
next account. :class:`Relay` then sends the held bytes and every later chunk as it arrives, unbuffered
and byte for byte. If upstream drops the connection after output started, the client's connection
is dropped too: a truncated answer must never look complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from tray.sse import SSEEvent, SSEParser, StreamError, is_output, stream_error

log = logging.getLogger(__name__)

FAILOVER_KINDS = frozenset({"overloaded", "usage_limit"})
QUEUE_CHUNKS = 256  # upstream chunks read ahead of a slow client before reading pauses


@dataclass
class Opened:
    """An SSE answer whose first output event has arrived (or a non-SSE answer, ``held`` empty)."""

    response: httpx.Response
    chunks: AsyncIterator[bytes]
    held: list[bytes] = field(default_factory=list)
    events: list[SSEEvent] = field(default_factory=list)  # the events parsed before the commit
    parser: SSEParser = field(default_factory=SSEParser)  # holds any partial event after them


@dataclass(frozen=True)
class EarlyFailure:
    """The stream failed before any output: fail over."""

    kind: str  # "overloaded", "usage_limit", "ended", "transport"
    message: str
    error: StreamError | None = None


def is_event_stream(response: httpx.Response) -> bool:
    content_type = str(response.headers.get("content-type", ""))
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive. Without a content-encoding to undo, straight from the
    transport's stream: httpx's decoding and re-chunking layers cost CPU per chunk and do nothing."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity") and isinstance(response.stream, httpx.AsyncByteStream):
        return response.stream.__aiter__()
    return response.aiter_bytes()


async def open_stream(response: httpx.Response) -> Opened | EarlyFailure:
    """Read ``response`` (2xx) until its first output event; close it and report on early failure."""
    chunks = body_chunks(response)
    if not is_event_stream(response):
        return Opened(response, chunks)
    opened = Opened(response, chunks)
    parser = opened.parser
    try:
        async for chunk in chunks:
            opened.held.append(chunk)
            events = parser.feed(chunk)
            # Every event of this read is kept, even those after the first output: the read may
            # already hold the whole answer, and the parser has moved past all of them.
            opened.events += events
            for event in events:
                err = stream_error(event)
                if err is not None and err.kind in FAILOVER_KINDS:
                    await response.aclose()
                    return EarlyFailure(err.kind, err.message or err.code or err.kind, err)
                if err is not None or is_output(event):
                    return opened
    except httpx.HTTPError as exc:
        await response.aclose()
        return EarlyFailure("transport", f"stream broke before any output ({type(exc).__name__})")
    await response.aclose()
    return EarlyFailure("ended", "stream ended before any output")


class Relay(Response):
    """ASGI response streaming an :class:`Opened` answer. ``on_end(completed)`` runs once at the end.

    A reader task moves upstream chunks into a small buffer (:class:`_Feed`) and the writer sends what
    is there in one write: chunks that arrived together leave together (fewer syscalls under load), and a
    lone chunk leaves at once. Nothing is held back waiting for more.
    """

    def __init__(
        self,
        opened: Opened,
        status: int,
        headers: list[tuple[str, str]],
        *,
        on_end: Callable[[bool], None] | None = None,
    ) -> None:
        self.opened = opened
        self.status_code = status
        self.raw_list = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.background = None
        self.on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        completed = False
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                completed = pump.result()
            else:
                log.info("client went away mid-stream; closing the upstream answer")
        finally:
            for task in (pump, watch):
                task.cancel()
            for task in (pump, watch):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.opened.response.aclose()
            if self.on_end is not None:
                self.on_end(completed)

    async def _pump(self, send: Send) -> bool:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_list})
        if self.opened.held:
            await send({"type": "http.response.body", "body": b"".join(self.opened.held), "more_body": True})
        feed = _Feed()
        reader = asyncio.ensure_future(feed.fill(self.opened.chunks))
        try:
            while True:
                parts, end = await feed.take()
                if parts:
                    body = parts[0] if len(parts) == 1 else b"".join(parts)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                if end is None:
                    continue
                if isinstance(end, BaseException):
                    # Returning without the final body message makes the server cut the connection,
                    # so the client sees a broken stream rather than a short but "complete" one.
                    log.warning("upstream stream dropped after output started (%s); passing the drop on",
                                type(end).__name__)
                    return False
                break
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True


class _Feed:
    """Chunks read ahead of the writer: a list and two wake-up futures, cheaper per chunk than an
    :class:`asyncio.Queue`. The reader waits once :data:`QUEUE_CHUNKS` are unsent (a slow client)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.end: BaseException | bool | None = None  # True: upstream finished; an error: it broke
        self._loop = asyncio.get_running_loop()
        self._data: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None

    async def fill(self, chunks: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                self.parts.append(chunk)
                if self._data is not None:
                    self._wake_writer()
                if len(self.parts) >= QUEUE_CHUNKS:
                    self._space = self._loop.create_future()
                    await self._space
        except httpx.HTTPError as exc:
            self.end = exc
        else:
            self.end = True
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter, self._data = self._data, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> tuple[list[bytes], BaseException | bool | None]:
        """Everything read so far (waiting for at least one chunk or the end), and the end if seen."""
        if not self.parts and self.end is None:
            self._data = self._loop.create_future()
            await self._data
        parts, self.parts = self.parts, []
        space, self._space = self._space, None
        if space is not None and not space.done():
            space.set_result(None)
        return parts, self.end


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
