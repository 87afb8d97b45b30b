"""The Codex backend's answer to a Chat Completions request, relayed in Chat Completions shape.

:func:`translated` wraps an :class:`~tray.proxy.relay.Opened` answer so the :class:`~tray.proxy.relay.Relay`
sends ``chat.completion.chunk`` events instead of the upstream bytes: the events read before the
commit go out translated first, then each later chunk as it arrives (nothing waits for the whole
answer). A stream that breaks or ends early is passed on as a broken connection, as on every route.
The translation itself is :mod:`tray.chatanswer` (pure).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tray.proxy.chatanswer import ChatStream
from tray.proxy.chatrequest import ChatOptions
from tray.proxy.relay import Opened
from tray.proxy.sse import SSEParser


def translated(opened: Opened, options: ChatOptions) -> Opened:
    """``opened`` as Chat Completions chunks (same upstream response, so closing it works as before)."""
    stream = ChatStream(options)
    held = b"".join(stream.feed(event) for event in opened.events)
    return Opened(opened.response, _chunks(opened, stream), [held] if held else [], [], SSEParser())


async def _chunks(opened: Opened, stream: ChatStream) -> AsyncIterator[bytes]:
    parser = opened.parser  # holds whatever partial event followed the ones read before the commit
    async for chunk in opened.chunks:
        out = b"".join(stream.feed(event) for event in parser.feed(chunk))
        if out:
            yield out
    tail = parser.flush()
    if tail is not None:
        out = stream.feed(tail)
        if out:
            yield out
    stream.finish()  # raises when the answer never ended: the relay drops the connection
