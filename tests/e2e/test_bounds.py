"""End to end: a broken or hostile backend cannot make the proxy hold unbounded bytes. What is held
back before the first output is bounded (the attempt fails over past the bound), compressed answers
are decoded piece by piece with a size limit (a 1 MB → 1 GiB gzip bomb), and the model list is
read with a size limit and parsed off the event loop."""

from __future__ import annotations

import functools
import json
import struct
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.support.proxykit import replies, running_pool, sse_types

MIB = 1024 * 1024


@functools.cache
def gzip_bomb(gib: int = 1) -> bytes:
    """``gib`` GiB of zero bytes as one gzip member of about 1 MB (each MiB of zeros is the same
    1,037-byte deflate block after a full flush)."""
    zeros = b"\0" * MIB
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    count = gib * 1024
    crc = functools.reduce(lambda c, _: zlib.crc32(zeros, c), range(count), 0)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + block * count + packer.flush() + struct.pack("<II", crc, (count * MIB) & 0xFFFFFFFF)


@contextmanager
def peak_memory() -> Iterator[Callable[[], int]]:
    """Python allocations at their peak inside the block (the proxy runs in this process)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_comments_before_any_output_are_bounded_and_the_request_fails_over() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.ok().but(preamble=b": keep-alive\n\n" * (2 * MIB // 14)))
        response = pool.post()
        assert response.status_code == 200 and pool.served_by(response) == "b"
        assert len(response.content) < 64 * 1024  # none of a's comments reached the client
        assert pool.cooldown_until("a") is not None


def test_a_giant_event_before_any_output_is_bounded_and_the_request_fails_over() -> None:
    giant = b'event: response.in_progress\ndata: {"type":"response.in_progress","pad":"' + b"x" * (9 * MIB)
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.ok().but(preamble=giant + b'"}\n\n'))
        response = pool.post()
        assert response.status_code == 200 and pool.served_by(response) == "b"
        assert sse_types(response)[-1] == "response.completed"


def test_a_gzip_bomb_before_any_output_is_not_inflated_into_memory() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.raw(gzip_bomb(), encoding="gzip"))
        with peak_memory() as peak:
            response = pool.post()
            held = peak()
        assert response.status_code == 200 and pool.served_by(response) == "b"
        assert held < 64 * MIB, f"{held / MIB:.0f} MiB at the peak"


def test_a_gzip_bomb_as_the_model_list_is_refused_without_inflating_it() -> None:
    with running_pool(["a"]) as pool, pool.client() as client:
        pool.upstream.script_models("a", replies.raw(gzip_bomb(), content_type="application/json",
                                                     encoding="gzip"))
        with peak_memory() as peak:
            response = client.get("/v1/models")
            held = peak()
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_too_large"
        assert held < 100 * MIB, f"{held / MIB:.0f} MiB at the peak"
        assert client.get("/v1/models").status_code == 200  # the next list is fine again


def test_a_large_model_list_is_converted_whole() -> None:
    models = [{"slug": f"model-{n:06d}", "description": "d" * 200} for n in range(60_000)]
    body = json.dumps({"models": models}).encode()  # about 15 MB
    with running_pool(["a"]) as pool, pool.client() as client:
        pool.upstream.script_models("a", replies.raw(body, content_type="application/json"))
        listed = client.get("/v1/models")
        assert listed.status_code == 200
        assert [m["id"] for m in listed.json()["data"]] == [m["slug"] for m in models]
