"""Compressed request bodies: decoding with a limit, worked examples (pure)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest
import zstandard

from tray.proxy.contentcoding import BodyTooLarge, DamagedBody, UnknownCoding, codings, decode, encode

TEXT = b"".join(b'{"n": %d, "text": "hello"}\n' % n for n in range(20_000))  # about 560 kB


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(("packed", "names"), [
    (zstandard.ZstdCompressor().compress(TEXT), ["zstd"]),
    (encode(TEXT[:99], ["zstd"]) + encode(TEXT[99:], ["zstd"]), ["zstd"]),  # two frames
    (gzip.compress(TEXT), ["gzip"]),
    (gzip.compress(TEXT[:1000]) + gzip.compress(TEXT[1000:]), ["x-gzip"]),
    (zlib.compress(TEXT), ["deflate"]),
    (_raw_deflate(TEXT), ["deflate"]),  # "deflate" as some clients send it: no zlib header
    (zstandard.ZstdCompressor().compress(gzip.compress(TEXT)), ["gzip", "zstd"]),
])
def test_every_coding_decodes_to_the_original(packed: bytes, names: list[str]) -> None:
    assert decode(packed, names, len(TEXT)) == TEXT


def test_the_header_lists_codings_in_the_order_applied() -> None:
    assert codings(None) == []
    assert codings("identity") == []
    assert codings(" GZIP , zstd") == ["gzip", "zstd"]
    with pytest.raises(UnknownCoding) as found:
        codings("gzip, br")
    assert found.value.status == 415 and "'br'" in str(found.value)


@pytest.mark.parametrize("name", ["zstd", "gzip", "deflate"])
def test_the_limit_is_on_the_decoded_size(name: str) -> None:
    packed = encode(TEXT, [name])
    assert decode(packed, [name], len(TEXT)) == TEXT  # exactly at the limit is fine
    with pytest.raises(BodyTooLarge) as found:
        decode(packed, [name], len(TEXT) - 1)
    assert found.value.status == 413


@pytest.mark.parametrize("name", ["zstd", "gzip", "deflate"])
def test_cut_or_damaged_bodies_are_refused(name: str) -> None:
    packed = encode(TEXT, [name])
    with pytest.raises(DamagedBody, match="ends early"):
        decode(packed[:-40], [name], 10 * len(TEXT))
    with pytest.raises(DamagedBody) as found:
        decode(b"this is not compressed" * 10, [name], 10 * len(TEXT))
    assert found.value.status == 400


@pytest.mark.parametrize("name", ["zstd", "gzip"])
def test_a_bomb_costs_no_more_memory_than_the_limit(name: str) -> None:
    zeros = b"\0" * (512 * 1024 * 1024)
    bomb = zstandard.ZstdCompressor(level=19).compress(zeros) if name == "zstd" else gzip.compress(zeros, 1)
    del zeros
    limit = 8 * 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            decode(bomb, [name], limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * limit, f"peak {peak / 1e6:.1f} MB for a {limit / 1e6:.0f} MB limit"


def test_encode_gives_what_decode_takes() -> None:
    for names in (["zstd"], ["gzip"], ["deflate"], ["deflate", "zstd"]):
        assert decode(encode(TEXT, names), names, len(TEXT)) == TEXT
