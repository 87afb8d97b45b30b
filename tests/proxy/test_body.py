"""Reading a request body once: what routing needs comes out, everything else stays the client's bytes."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from tray.proxy.body import (
    PRESIZE_LIMIT,
    NotAnObject,
    is_blank,
    parse_object,
    read_fields,
    read_limited,
    sealed_blobs,
    sealed_in,
    without_sealed,
)

CHUNK = 65536


class TooBig(Exception):
    pass


async def arriving(size: int, chunk: int = CHUNK, fill: bytes = b"x") -> AsyncIterator[bytes]:
    """``size`` bytes in chunks made as they arrive, each one different from the last."""
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        yield bytes([fill[0] + (sent // chunk) % 20]) * n
        sent += n


def read(size: int, declared: str | None, limit: int = 64 * 2**20, chunk: int = CHUNK) -> bytes:
    return asyncio.run(read_limited(arriving(size, chunk), declared, limit, TooBig()))


@pytest.mark.parametrize(("size", "declared"), [
    (0, None), (0, "0"), (5, "5"), (1_300_000, "1300000"), (1_300_000, None), (200_001, "200001"),
])
def test_the_body_is_the_bytes_that_arrived(size: int, declared: str | None) -> None:
    expected = b"".join(asyncio.run(_collect(arriving(size))))
    assert read(size, declared) == expected
    assert read(size, declared, chunk=977) == b"".join(asyncio.run(_collect(arriving(size, 977))))


async def _collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


def test_a_declared_length_that_was_not_kept_changes_nothing() -> None:
    # Fewer bytes than declared (the client gave up): what came, no padding; more: all of it.
    assert read(1000, "5000") == b"x" * 1000
    assert read(1000, "10") == b"x" * 1000


def test_too_big_is_refused_before_reading_or_while_reading() -> None:
    with pytest.raises(TooBig):
        read(10, "2000", limit=1000)
    with pytest.raises(TooBig):
        read(2000, None, limit=1000)
    with pytest.raises(TooBig):
        read(2000, "500", limit=1000)  # a length that lies does not lift the limit
    assert read(1000, None, limit=1000) == b"x" * 1000


async def held(size: int, declared: str | None, limit: int = 64 * 2**20) -> tuple[bytes, int]:
    """The body read, and the most memory traced while reading it (inside the loop: starting and
    closing one is not part of reading)."""
    tracemalloc.start()
    try:
        body = await read_limited(arriving(size), declared, limit, TooBig())
        return body, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_long_session_body_is_held_once_while_it_arrives() -> None:
    # Chunks kept and joined would hold a 4 MB body twice at the end; written into one buffer
    # whose bytes are handed over, it is held once (plus the chunk in hand).
    size = 4 * 2**20
    for declared in (str(size), None):
        body, peak = asyncio.run(held(size, declared))
        assert len(body) == size
        assert peak < size * 1.25 + 4 * CHUNK, (declared, peak)


def test_a_declared_length_reserves_no_more_than_the_presize_limit() -> None:
    # A client that promises 60 MB and sends 10 bytes does not make the proxy hold 60 MB.
    body, peak = asyncio.run(held(10, str(60 * 2**20), limit=100 * 2**20))
    assert body == b"x" * 10
    assert peak < PRESIZE_LIMIT + 2**20


def test_only_the_fields_routing_reads_are_kept() -> None:
    raw = json.dumps({"model": "gpt-5.5", "input": [{"type": "message"}] * 3, "tools": [{"x": 1}],
                      "prompt_cache_key": "conv-1", "service_tier": None}).encode()
    assert read_fields(raw) == {"model": "gpt-5.5", "prompt_cache_key": "conv-1", "service_tier": None}


def test_what_the_standard_library_accepted_is_still_accepted() -> None:
    # orjson refuses these; the proxy took them before and passes them on unchanged now too.
    assert read_fields(b'{"model": "m", "temperature": NaN}') == {"model": "m"}
    assert read_fields(b'{"model": "m", "input": "\\ud800"}') == {"model": "m"}
    assert read_fields('{"model": "m"}'.encode("utf-16")) == {"model": "m"}


@pytest.mark.parametrize("raw", [b"{not json", b'{"a": 1', b"\xff\xfe\xfa"])
def test_malformed_json_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        read_fields(raw)


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"3"])
def test_json_that_is_no_object_is_refused(raw: bytes) -> None:
    with pytest.raises(NotAnObject):
        read_fields(raw)
    with pytest.raises(NotAnObject):
        parse_object(raw)


@pytest.mark.parametrize("raw", [
    rb'{"seed": 123456789012345678901234567890, "top_p": 0.1, "text": "h\u00e9llo \ud83d\ude00"}',
    rb'{"temperature": NaN, "text": "\ud800"}',  # only the standard library reads these
])
def test_the_full_parse_writes_back_what_it_read(raw: bytes) -> None:
    obj, encode = parse_object(raw)
    again, _ = parse_object(encode(obj))
    assert json.dumps(again) == json.dumps(obj) == json.dumps(json.loads(raw))


def test_blank_bodies() -> None:
    assert is_blank(b"") and is_blank(b" \r\n\t")
    assert not is_blank(b" {}")


def test_the_encrypted_items_of_a_context_are_found_whatever_else_it_holds() -> None:
    body = {"model": "m", "include": ["reasoning.encrypted_content"], "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "encrypted_content"}]},
        {"type": "reasoning", "summary": [], "encrypted_content": "r1"},
        {"type": "compaction", "encrypted_content": "c1"},
        {"type": "reasoning", "summary": [], "encrypted_content": None},
    ]}
    raw = json.dumps(body).encode()
    assert sealed_blobs(raw) == ("r1", "c1") == sealed_in(body)
    # Only the include value and a text mention the words: no key, no walk, nothing found.
    assert sealed_blobs(json.dumps({**body, "input": body["input"][:1]}).encode()) == ()
    assert sealed_blobs(b'{"input": "plain text"}') == () and sealed_blobs(b"{}") == ()
    # Items that are no objects, or text only the standard library reads, still give their blobs.
    odd = b'{"input": [3, {"encrypted_content": "r2"}], "t": NaN}'
    assert sealed_blobs(odd) == ("r2",)
    assert sealed_blobs(b'{"input": [{"encrypted_content": "r3"}') == ()  # broken JSON: refused elsewhere


def test_without_sealed_leaves_out_only_the_named_items() -> None:
    body = {"model": "m", "input": [{"type": "message"}, {"type": "reasoning", "encrypted_content": "mine"},
                                     {"type": "reasoning", "encrypted_content": "theirs"}]}
    kept, gone = without_sealed(body, {"theirs"}.__contains__)
    assert gone == body["input"][2:] and kept == {"model": "m", "input": body["input"][:2]}
    assert without_sealed(body, lambda blob: False) == (body, [])
    assert len(body["input"]) == 3  # the request's own object is untouched
