from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tray.proxy.sse import SSEParser, completed_response, is_output, is_preamble, stream_error


def event(etype: str, **data: object) -> bytes:
    return f"event: {etype}\ndata: {json.dumps({'type': etype, **data})}\n\n".encode()


STREAM = (
    event("response.created", response={"id": "r1"})
    + event("response.in_progress", response={"id": "r1"})
    + event("response.output_text.delta", delta="Hi")
    + event("response.completed", response={"id": "r1", "status": "completed"})
)


def test_events_keep_their_exact_bytes_and_types() -> None:
    events = SSEParser().feed(STREAM)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_text.delta",
        "response.completed",
    ]
    assert b"".join(e.raw for e in events) == STREAM
    assert events[2].data["delta"] == "Hi"


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    parser = SSEParser()
    events = []
    pos = 0
    for size in cuts:
        events += parser.feed(STREAM[pos : pos + size])
        pos += size
    events += parser.feed(STREAM[pos:])
    assert b"".join(e.raw for e in events) == STREAM
    assert len(events) == 4


def test_crlf_and_multiline_data_and_comments() -> None:
    raw = b': keep-alive\r\n\r\nevent: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    events = SSEParser().feed(raw)
    assert events[0].type is None and is_preamble(events[0])
    assert events[1].type == "x" and events[1].data == {"a": 1}


def test_trailing_bytes_without_blank_line_are_flushed() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    tail = parser.flush()
    assert tail is not None and tail.raw == b"data: [DONE]" and tail.data is None


def test_classification() -> None:
    created, _, delta, done = SSEParser().feed(STREAM)
    assert is_preamble(created) and not is_output(created)
    assert is_output(delta) and is_output(done)
    assert completed_response(done) == {"id": "r1", "status": "completed"}
    assert completed_response(delta) is None


def test_overload_and_usage_limit_errors_are_recognised() -> None:
    overloaded, limit, failed, other = SSEParser().feed(
        event("error", code="server_is_overloaded", message="busy")
        + event("error", error={"type": "usage_limit_reached", "resets_in_seconds": 30})
        + event("response.failed", response={"error": {"code": "server_is_overloaded"}})
        + event("error", code="invalid_prompt", message="no")
    )
    assert stream_error(overloaded) is not None and stream_error(overloaded).kind == "overloaded"  # type: ignore[union-attr]
    lim = stream_error(limit)
    assert lim is not None and lim.kind == "usage_limit" and lim.payload["resets_in_seconds"] == 30
    assert stream_error(failed).kind == "overloaded"  # type: ignore[union-attr]
    assert stream_error(other).kind == "other"  # type: ignore[union-attr]
    assert not is_output(overloaded)


MIXED = (
    b": keep-alive\n\n"
    + event("response.created", response={"id": "r1"}).replace(b"\n", b"\r\n")
    + b'event: x\rdata: {"a": 1}\r\r'
    + event("response.output_text.delta", delta="Hi")
    + b"data: [DONE]\r\n\r\n"
)


@given(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=80))
def test_any_chunking_of_mixed_line_endings_gives_the_events_of_one_feed(cuts: list[int]) -> None:
    whole = SSEParser().feed(MIXED)
    parser = SSEParser()
    events, pos = [], 0
    for size in cuts:
        events += parser.feed(MIXED[pos : pos + size])
        pos += size
    events += parser.feed(MIXED[pos:])
    assert events == whole and len(whole) == 5
    assert parser.flush() is None


def feed_in(parser: SSEParser, data: bytes, size: int) -> list[object]:
    return [e for i in range(0, len(data), size) for e in parser.feed(data[i : i + size])]


def test_one_big_event_in_small_chunks_is_searched_a_bounded_number_of_times() -> None:
    """A 4 MB event in 4 kB chunks: every byte is searched a few times, not once per chunk (the
    search used to restart from the event's first byte on every feed: 0.75 s of CPU here)."""
    for sep in (b"\n", b"\r\n"):
        for size in (1 << 20, 4 << 20):
            data = b"data: " + b"x" * size + sep + sep
            parser = SSEParser()
            events = feed_in(parser, data, 4096)
            assert [e.raw for e in events] == [data]  # type: ignore[attr-defined]
            assert parser.scanned <= 8 * len(data), (sep, size, parser.scanned / len(data))


def test_many_small_events_in_one_big_chunk_are_searched_a_bounded_number_of_times() -> None:
    for sep in (b"\n", b"\r\n"):
        data = b"".join(b"data: {}" + sep + sep for _ in range(20_000))
        parser = SSEParser()
        assert len(parser.feed(data)) == 20_000
        assert parser.scanned <= 8 * len(data)
