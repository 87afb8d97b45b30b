"""The two ends a bridge reads from: :class:`Reads` keeps one read in flight so a wait on it can be
given up and taken up again without losing a message, and :class:`ClientSide` is the accepted client
WebSocket (ASGI ``receive``/``send``) with its close and its departure (:class:`ClientGone`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from starlette.types import Message, Receive, Send

T = TypeVar("T")


class ClientGone(Exception):
    """The client's socket closed (or broke) while the bridge needed it."""


class Reads(Generic[T]):
    """One read in flight at a time; a wait on it can be given up without losing what it reads."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._pending: asyncio.Future[T] | None = None

    def future(self) -> asyncio.Future[T]:
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._read())
        return self._pending

    async def next(self) -> T:
        await asyncio.wait({self.future()})
        return self.take()

    def take(self) -> T:
        done, self._pending = self.future(), None
        return done.result()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


class ClientSide:
    """The accepted client socket (ASGI), as the bridge uses it."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._send = send
        self.reads: Reads[Message] = Reads(receive)
        self.closed = False

    def left(self) -> bool:
        """Whether the read in flight already says the client is gone."""
        pending = self.reads.future()
        return pending.done() and (pending.exception() is not None
                                   or pending.result()["type"] == "websocket.disconnect")

    async def next(self) -> str | bytes:
        message = await self.reads.next()
        if message["type"] == "websocket.disconnect":
            self.closed = True
            raise ClientGone
        text = message.get("text")
        return text if isinstance(text, str) else bytes(message.get("bytes") or b"")

    async def send(self, text: str) -> None:
        try:
            await self._send({"type": "websocket.send", "text": text})
        except (OSError, RuntimeError) as exc:
            self.closed = True
            raise ClientGone from exc

    async def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError, RuntimeError):  # already gone
            await self._send({"type": "websocket.close", "code": code, "reason": ""})
