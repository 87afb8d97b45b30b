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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from tray.errors import UpstreamError
from tray.proxy.decoding import READ_ERRORS, body_chunks
from tray.proxy.sse import SSEEvent, SSEParser, StreamError, is_comment, is_output, stream_error

log = logging.getLogger(__name__)

T = TypeVar("T")
FAILOVER_KINDS = frozenset({"overloaded", "usage_limit"})
QUEUE_CHUNKS = 256  # upstream chunks read ahead of a slow client before reading pauses
HOLD_LIMIT = 8 * 1024 * 1024  # bytes held back before the first output (Codex's preamble: kilobytes)
COMMENT_LIMIT = 256 * 1024  # of them, comment bytes (a keep-alive is 14 bytes, sent every few seconds)
INFLATE_LIMIT = 256 * 1024 * 1024  # a compressed answer inflating past this is cut (a gzip bomb)


@dataclass
class Opened:
    """An SSE answer whose first output event has arrived (or a non-SSE answer, ``held`` empty)."""

    response: httpx.Response
    chunks: AsyncIterator[bytes]
    held: list[bytes] = field(default_factory=list)
    events: list[SSEEvent] = field(default_factory=list)  # the events (not comments) read before the commit
    parser: SSEParser = field(default_factory=SSEParser)  # holds any partial event after them


@dataclass(frozen=True)
class EarlyFailure:
    """The stream failed before any output: fail over."""

    kind: str  # "overloaded", "usage_limit", "ended", "transport", "oversized"
    message: str
    error: StreamError | None = None


def is_event_stream(response: httpx.Response) -> bool:
    content_type = str(response.headers.get("content-type", ""))
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


async def open_stream(response: httpx.Response) -> Opened | EarlyFailure:
    """Read ``response`` (2xx) until its first output event; close it and report on early failure.

    What is held back meanwhile is bounded (:data:`HOLD_LIMIT` bytes, :data:`COMMENT_LIMIT` of them
    comments): past either, upstream is not answering sensibly and the attempt fails over."""
    chunks = body_chunks(response, inflate_limit=INFLATE_LIMIT)
    if not is_event_stream(response):
        return Opened(response, chunks)
    opened = Opened(response, chunks)
    try:
        found = await _hold_back(opened)
    except READ_ERRORS as exc:
        found = EarlyFailure("transport", f"stream broke before any output ({_why(exc)})")
    except BaseException:
        await response.aclose()  # cancelled: the client left
        raise
    if isinstance(found, EarlyFailure):
        await response.aclose()
    return found


async def _hold_back(opened: Opened) -> Opened | EarlyFailure:
    parser, held, comments = opened.parser, 0, 0
    async for chunk in opened.chunks:
        opened.held.append(chunk)
        held += len(chunk)
        events = parser.feed(chunk)
        # Every event of this read is kept, even those after the first output: the read may
        # already hold the whole answer, and the parser has moved past all of them.
        for event in events:
            if is_comment(event):
                comments += len(event.raw)
            else:
                opened.events.append(event)
        for event in events:
            err = stream_error(event)
            if err is not None and err.kind in FAILOVER_KINDS:
                return EarlyFailure(err.kind, err.message or err.code or err.kind, err)
            if err is not None or is_output(event):
                return opened
        if held > HOLD_LIMIT or comments > COMMENT_LIMIT:
            return EarlyFailure("oversized", f"{held // 1024} kB before any output ({comments // 1024} kB"
                                f" of them comments)")
    return EarlyFailure("ended", "stream ended before any output")


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UpstreamError) else type(exc).__name__


class Relay(Response):
    """ASGI response streaming an :class:`Opened` answer.

    ``on_end(how)`` runs once, with how the answer ended: ``"completed"`` (before the client gets the
    final chunk, so what it triggers is under way when the client sees the end), ``"dropped"``
    (upstream broke after output started: passed on as a broken connection) or ``"client gone"``.

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
        on_end: Callable[[str], None] | None = None,
    ) -> None:
        self.opened = opened
        self.status_code = status
        self.raw_list = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.background = None
        self.on_end = on_end

    def _ended(self, how: str) -> None:
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end(how)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        how = "client gone"
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                how = pump.result()
            else:
                log.info("client went away mid-stream; closing the upstream answer")
        finally:
            for task in (pump, watch):
                task.cancel()
            for task in (pump, watch):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.opened.response.aclose()
            self._ended(how)

    async def _pump(self, send: Send) -> str:
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
                    return "dropped"
                break
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self._ended("completed")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "completed"


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
        except READ_ERRORS as exc:
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


class Hangup:
    """Watches the client's side of the connection while a request is routed, before any answer.

    The body has been read by then, so the next ASGI message is the disconnect (or nothing). Close it
    before the answer is sent: from then on the answer watches the connection itself."""

    def __init__(self, receive: Receive) -> None:
        self.left = asyncio.Event()
        self._watch = asyncio.ensure_future(self._wait(receive))

    async def _wait(self, receive: Receive) -> None:
        await _wait_disconnect(receive)
        self.left.set()

    @property
    def gone(self) -> bool:
        return self.left.is_set()

    async def unless_gone(self, work: Awaitable[T], discard: Callable[[T], Awaitable[None]]) -> T | None:
        """``work``'s result, or None once the client left first (``work`` is then cancelled, and a
        result it produced anyway is handed to ``discard``)."""
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self.left.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            gone.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if task.cancelled():
            return None
        result = task.result()  # done before we could cancel it: an error is still an error
        if self.gone:
            await discard(result)
            return None
        return result

    def close(self) -> None:
        self._watch.cancel()


async def discard(answer: object) -> None:
    """Let go of an answer nobody will read (the upstream connection of a :class:`Relay`)."""
    if isinstance(answer, Relay):
        await answer.opened.response.aclose()
