"""Upstream response bodies as decoded chunks, with limits.

The proxy asks upstream for ``gzip`` or ``deflate`` only (``shaping.ACCEPT_ENCODING``) and undoes them
itself, a piece of at most :data:`PIECE` bytes at a time: httpx's own decoder inflates a whole network
read at once, so one 64 kB read of a gzip bomb became 64 MB, and nothing capped the total. Here a
compressed body past its ``inflate_limit`` ends with :class:`BodyTooLarge`; callers that keep a whole
body (an error answer, the model list) pass their own limit to :func:`read_body`. An uncompressed body
comes straight from the transport's stream: httpx's decoding and re-chunking layers cost CPU per
chunk and do nothing for it.

Errors while reading are ``httpx.HTTPError`` (the connection) or :class:`~tray.errors.UpstreamError`
(what upstream sent): :data:`READ_ERRORS`.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import httpx

from tray.errors import UpstreamError

PIECE = 64 * 1024  # most bytes one inflate step may produce
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class BodyTooLarge(UpstreamError):
    """Upstream sent more than the proxy will take for this body."""


READ_ERRORS = (httpx.HTTPError, UpstreamError)


def wire_headers(response: httpx.Response) -> list[tuple[str, str]]:
    """The response's headers as sent, each byte one character (latin-1), so they go back out byte
    for byte: httpx's own decoding may read UTF-8 into characters no header can carry."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers.raw]


def body_chunks(response: httpx.Response, *, inflate_limit: int | None = None) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive, decoded; a compressed one stops with :class:`BodyTooLarge`
    once it inflates past ``inflate_limit`` bytes."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        if isinstance(response.stream, httpx.AsyncByteStream):
            return response.stream.__aiter__()
        return response.aiter_raw()
    wbits = _WBITS.get(encoding)
    if wbits is None:
        return _refuse(encoding)
    return _inflate(response.aiter_raw(), wbits, inflate_limit)


async def read_body(response: httpx.Response, limit: int, *, what: str = "answer") -> bytes:
    """The whole body, decoded, or :class:`BodyTooLarge` once it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in body_chunks(response, inflate_limit=limit):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The Codex backend's {what} is larger than {limit // 1024} kB.")
        parts.append(chunk)
    return b"".join(parts)


async def _refuse(encoding: str) -> AsyncIterator[bytes]:
    raise UpstreamError(f"The Codex backend answered in an encoding codex-pool did not ask for ({encoding}).")
    yield b""  # pragma: no cover - makes this an async generator


async def _inflate(raw: AsyncIterator[bytes], wbits: int, limit: int | None) -> AsyncIterator[bytes]:
    inflater = zlib.decompressobj(wbits)
    total = 0
    first = True
    async for data in raw:
        while data:
            try:
                out = inflater.decompress(data, PIECE)
            except zlib.error as exc:
                if first and wbits == zlib.MAX_WBITS:  # "deflate" sent without its zlib header
                    inflater, wbits = zlib.decompressobj(-zlib.MAX_WBITS), -zlib.MAX_WBITS
                    continue
                raise UpstreamError(f"The Codex backend sent a damaged compressed answer ({exc}).") from exc
            first = False
            data = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data:  # another gzip member follows
                data = inflater.unused_data
                inflater = zlib.decompressobj(wbits)
            elif not data and len(out) == PIECE:
                data = b""  # more output may be waiting inside the inflater: drain it below
                out += _drain(inflater, limit, total + len(out))
            total += len(out)
            if limit is not None and total > limit:
                raise BodyTooLarge(f"The Codex backend's answer inflates to more than {limit // 1024} kB.")
            if out:
                yield out
    if not inflater.eof and not first:
        raise UpstreamError("The Codex backend's compressed answer ended early.")


def _drain(inflater: zlib._Decompress, limit: int | None, total: int) -> bytes:
    """What the inflater still holds after a full piece, one piece at a time (up to the limit)."""
    parts: list[bytes] = []
    while True:
        out = inflater.decompress(b"", PIECE)
        parts.append(out)
        total += len(out)
        if len(out) < PIECE or (limit is not None and total > limit):
            return b"".join(parts)
