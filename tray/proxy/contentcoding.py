"""Compressed request bodies (``Content-Encoding`` on what a client sends): decoded with a limit.

Codex CLI zstd-compresses its request bodies with a ChatGPT login on its built-in provider, and other
clients may gzip theirs. The proxy must read the JSON inside (routing, shaping, affinity), so
:func:`decode` undoes each coding in the header, last applied first, a piece of at most
:data:`PIECE` bytes at a time, and stops with :class:`BodyTooLarge` as soon as the decoded size
passes the body limit: a few kilobytes that inflate to gigabytes (a decompression bomb) cost no more
memory than the limit. A coding the proxy cannot undo is :class:`UnknownCoding` (the client gets
415), a damaged body :class:`DamagedBody` (400).

:func:`encode` applies codings again (a body the proxy had to change goes upstream re-encoded, so
the header it carries still matches). Pure: no I/O, no clock.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import zstandard

from tray.errors import PoolError

PIECE = 64 * 1024  # most bytes one decoding step may produce
IDENTITY = frozenset({"", "identity"})
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
ZSTD = "zstd"
ZSTD_RATIO = 32 * 1024  # most bytes one byte of zstd input can become (128 kB RLE block / 4 bytes)
KNOWN = frozenset(_WBITS) | {ZSTD}


class CodingError(PoolError):
    """A request body the proxy cannot decode; ``status`` is the HTTP status the client gets."""

    status = 400
    code = "invalid_encoding"


class UnknownCoding(CodingError):
    status = 415
    code = "unsupported_content_encoding"


class DamagedBody(CodingError):
    pass


class BodyTooLarge(CodingError):
    status = 413
    code = "body_too_large"


def codings(header: str | None) -> list[str]:
    """The codings a ``Content-Encoding`` value lists, in the order they were applied (``identity``
    left out). Raises :class:`UnknownCoding` for one the proxy cannot undo."""
    names = [part.strip().lower() for part in (header or "").split(",")]
    names = [name for name in names if name not in IDENTITY]
    for name in names:
        if name not in KNOWN:
            raise UnknownCoding(f"The request body's Content-Encoding {name!r} is not supported; send it "
                                "plain or as zstd, gzip or deflate.")
    return names


def decode(body: bytes, applied: Sequence[str], limit: int) -> bytes:
    """``body`` with every coding in ``applied`` undone (last first); :class:`BodyTooLarge` once a
    decoded form passes ``limit`` bytes."""
    for name in reversed(applied):
        body = _zstd_decode(body, limit) if name == ZSTD else _zlib_decode(body, name, limit)
    return body


def encode(body: bytes, applied: Sequence[str]) -> bytes:
    """``body`` with the codings in ``applied`` applied in order (fast levels: this runs per request)."""
    for name in applied:
        if name == ZSTD:
            body = zstandard.ZstdCompressor(level=3).compress(body)
        elif name == "deflate":
            body = zlib.compress(body, 1)
        elif name in _WBITS:
            packer = zlib.compressobj(1, zlib.DEFLATED, _WBITS[name])
            body = packer.compress(body) + packer.flush()
        else:
            raise UnknownCoding(f"codex-pool cannot apply the content coding {name!r}.")
    return body


def _too_large(limit: int) -> BodyTooLarge:
    megabytes = limit / (1024 * 1024)
    return BodyTooLarge(f"The request body decompresses to more than the {megabytes:g} MB limit "
                        "(max-body-mb in config.toml).")


def _zlib_decode(body: bytes, name: str, limit: int) -> bytes:
    wbits = _WBITS[name]
    inflater = zlib.decompressobj(wbits)
    out: list[bytes] = []
    size = 0
    data = body
    while True:
        try:
            piece = inflater.decompress(data, PIECE)
        except zlib.error as exc:
            if not size and wbits == zlib.MAX_WBITS:  # "deflate" sent without its zlib header
                inflater, wbits = zlib.decompressobj(-zlib.MAX_WBITS), -zlib.MAX_WBITS
                continue
            raise DamagedBody(f"The request body is not valid {name} data ({exc}).") from exc
        out.append(piece)
        size += len(piece)
        if size > limit:
            raise _too_large(limit)
        data = inflater.unconsumed_tail
        if inflater.eof:
            if not inflater.unused_data:
                return b"".join(out)
            data, inflater = inflater.unused_data, zlib.decompressobj(wbits)  # another gzip member
        elif not data and len(piece) < PIECE:  # input used up, nothing waiting inside the inflater
            raise DamagedBody(f"The request body's {name} data ends early.")


def _zstd_decode(body: bytes, limit: int) -> bytes:
    # zstandard's decompressor takes no output limit, so the input goes in slices small enough that
    # one slice cannot overshoot what is left of the limit: a zstd block yields at most 128 kB and
    # costs at least 4 bytes (an RLE block), so n bytes decode to at most n * ZSTD_RATIO + a block.
    out: list[bytes] = []  # joined once at the end: a growing buffer would copy itself (twice the memory)
    size = 0
    unpacker = zstandard.ZstdDecompressor().decompressobj()
    at = 0
    try:
        while at < len(body):
            step = max(4, (limit - size) // ZSTD_RATIO)
            piece = unpacker.decompress(body[at:at + step])
            out.append(piece)
            size += len(piece)
            at += step
            if size > limit:
                raise _too_large(limit)
            if unpacker.eof:
                rest = unpacker.unused_data + body[at:]
                if not rest:
                    break
                body, at, unpacker = rest, 0, zstandard.ZstdDecompressor().decompressobj()  # next frame
    except zstandard.ZstdError as exc:
        raise DamagedBody(f"The request body is not valid zstd data ({exc}).") from exc
    if not unpacker.eof:
        raise DamagedBody("The request body's zstd data ends early.")
    return b"".join(out)
