"""End to end: upstream answers as the wire really delivers them (events coalesced into one read or
cut across reads, keep-alive comments, gzip) through the proxy's hold-back parser, relay and
``/v1/responses`` aggregation."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.upstream import WireShape
from tests.fakes.upstream_shape import KEEPALIVE
from tests.support.proxykit import codex_body, message_text, replies, running_pool, sse_types

ORDER = ["response.created", "response.in_progress",
         "response.output_item.added", "response.output_item.done",  # the reasoning item
         "response.output_item.added", "response.content_part.added", "response.output_text.delta",
         "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
         "response.content_part.done", "response.output_item.done", "response.completed"]
SHAPES = {
    "one-read": WireShape(coalesce=1.0, split=0.0, keepalive=0.0, gzip=0.0),
    "one-read-gzip": WireShape(coalesce=1.0, split=0.0, keepalive=1.0, gzip=1.0),
    "cut-everywhere-gzip": WireShape(coalesce=0.0, split=1.0, keepalive=1.0, gzip=1.0),
    "mixed-gzip": WireShape(coalesce=0.5, split=0.5, keepalive=0.5, gzip=1.0),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_a_streamed_answer_arrives_whole_and_decoded_however_the_wire_cut_it(shape: WireShape) -> None:
    with running_pool(["a"]) as pool:
        pool.upstream.wire(shape, seed=1)
        response = pool.post()
        assert response.status_code == 200
        assert "content-encoding" not in response.headers  # decoded by the proxy, sent as is
        assert sse_types(response) == ORDER
        if shape.keepalive == 1.0:
            assert response.content.count(KEEPALIVE) == len(ORDER)  # comments are passed on as they came


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_an_early_overload_fails_over_however_the_wire_cut_it(shape: WireShape) -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.wire(shape, seed=2)
        pool.upstream.script("a", replies.overloaded(style="error"))
        response = pool.post()
        assert response.status_code == 200 and pool.served_by(response) == "b"
        assert sse_types(response) == ORDER and b"server_is_overloaded" not in response.content


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_v1_non_streaming_gets_the_final_object_however_the_wire_cut_it(shape: WireShape) -> None:
    with running_pool(["a"]) as pool, pool.client() as client:
        pool.upstream.wire(shape, seed=3)
        response = client.post("/v1/responses", json={"model": "gpt-5.5", "input": "say hi"})
        assert response.status_code == 200, response.text
        final = response.json()
        assert final["status"] == "completed"
        assert message_text(final) == "Hi from a!"


def test_a_drop_after_output_in_a_gzip_answer_is_passed_on_as_a_drop() -> None:
    with running_pool(["a", "b"]) as pool, pool.client() as client:
        pool.upstream.wire(WireShape(coalesce=0.5, split=0.5, keepalive=0.5, gzip=1.0), seed=4)
        pool.upstream.script("a", replies.drop(after=8))  # past the reasoning item, into the text
        received = b""
        with pytest.raises(httpx.RemoteProtocolError), client.stream(
            "POST", "/backend-api/codex/responses", json=codex_body()
        ) as response:
            for chunk in response.iter_bytes():
                received += chunk
        assert b"response.output_text.delta" in received and b"response.completed" not in received
        assert pool.upstream.codex_requests("b") == []
