"""How the fake backend's bytes go on the wire (tests only): chunk boundaries, keep-alive comments and
gzip, as a real server behind a CDN delivers them.

A real SSE answer does not arrive one event per read: TCP and the CDN coalesce several events into one
chunk, cut one event across two chunks (anywhere, even between the two newlines that end it), slip
``: keep-alive`` comment lines in while the model thinks, and may compress the answer when the
request accepts gzip. :class:`WireShape` says how often each happens; :func:`wire_chunks` turns an
answer's frames into the chunks to send, and :class:`GzipWire` compresses a whole ASGI response
stream (flushed per chunk, so a streamed answer still streams).

Every fake gets the seeded random default (``WireShape()``), harder than the real backend in how
often it coalesces and splits; a test that needs one exact shape sets it with
``FakeUpstream.wire(...)`` (``WireShape.exact()`` sends one frame per chunk, uncompressed).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

KEEPALIVE = b": keep-alive\n\n"


@dataclass(frozen=True)
class WireShape:
    """Chances, per frame or per answer, of each way the wire can deliver an answer."""

    coalesce: float = 0.3  # a chunk goes out together with the next one
    split: float = 0.2  # a frame is cut in two at a random byte
    keepalive: float = 0.1  # a keep-alive comment goes out before a frame
    gzip: float = 0.25  # an answer is gzip-compressed (only when the request accepts gzip)

    @classmethod
    def exact(cls) -> WireShape:
        """One frame per chunk, no comments, never compressed."""
        return cls(coalesce=0.0, split=0.0, keepalive=0.0, gzip=0.0)


def wire_chunks(frames: list[bytes], shape: WireShape, rng: random.Random) -> list[bytes]:
    """The chunks that carry ``frames`` (their bytes in order, plus any keep-alive comments)."""
    pieces: list[bytes] = []
    for frame in frames:
        if rng.random() < shape.keepalive:
            pieces.append(KEEPALIVE)
        if len(frame) > 1 and rng.random() < shape.split:
            cut = rng.randrange(1, len(frame))
            pieces += [frame[:cut], frame[cut:]]
        else:
            pieces.append(frame)
    chunks: list[bytes] = []
    for piece in pieces:
        if chunks and rng.random() < shape.coalesce:
            chunks[-1] += piece
        else:
            chunks.append(piece)
    return chunks


def accepts_gzip(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name.lower() == b"accept-encoding":
            codings = {c.split(b";")[0].strip().lower() for c in value.split(b",")}
            return b"gzip" in codings
    return False


class GzipWire:
    """ASGI middleware: compress the answers ``decide()`` picks (request accepting gzip only).

    Each body message is compressed and flushed on its own, so chunks still leave when they are sent;
    a response that ends without its final message (a mid-stream drop) leaves the gzip stream cut."""

    def __init__(self, app: ASGIApp, decide: Callable[[], bool]) -> None:
        self.app = app
        self.decide = decide

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not accepts_gzip(scope) or not self.decide():
            await self.app(scope, receive, send)
            return
        packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        encoded = False  # the answer brought its own encoding: leave it alone

        async def gzip_send(message: Message) -> None:
            nonlocal encoded
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                encoded = any(k.lower() == b"content-encoding" for k, _ in headers)
                if not encoded:
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                    headers.append((b"content-encoding", b"gzip"))
                    message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not encoded:
                more = message.get("more_body", False)
                body = packer.compress(message.get("body", b""))
                body += packer.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
                message = {**message, "body": body}
            await send(message)

        await self.app(scope, receive, gzip_send)

