"""The responses-stream transport's pool: connections are kept only when that is safe and given up
when they are not, a full pool or a refused connection is the httpx error the proxy handles, a
cancelled request leaves nothing open, and a finished answer frees its request body at once."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys

import httpx
import pytest

from tests.support.rawupstream import (
    BODY,
    EVENTS,
    SSE_HEAD,
    URL,
    Upstream,
    answer,
    chunked,
    client,
    fetch,
    run,
)
from tray.proxy.streams import StreamTransport, is_stream_request


def test_an_answer_left_half_read_closes_its_connection() -> None:
    async def go() -> None:
        async with Upstream(answer(SSE_HEAD + chunked(*EVENTS, end=False), then=1.0),
                            answer(SSE_HEAD + chunked(b"x"))) as up:
            transport = StreamTransport()
            async with client(transport) as http:
                async with http.stream("POST", up.url + URL, content=BODY) as response:
                    async for _ in response.aiter_raw():
                        break  # the client left: the rest is never read
                assert transport.open_connections == 0
                assert await fetch(http, up.url) == (200, b"x")
            assert up.connections == 2

    run(go())


def test_a_full_pool_answers_pool_timeout() -> None:
    async def go() -> None:
        slow = answer(SSE_HEAD + chunked(b"a", end=False), then=1.0)
        one = StreamTransport(httpx.Limits(max_connections=1))
        async with Upstream(slow) as up, client(one, pool=0.1) as http, \
                http.stream("POST", up.url + URL, content=BODY):
            with pytest.raises(httpx.PoolTimeout):
                await fetch(http, up.url)

    run(go())


def test_a_refused_connection_is_a_connect_error() -> None:
    async def go() -> None:
        async with Upstream() as up:
            url = up.url
        async with client(StreamTransport()) as http:
            with pytest.raises(httpx.ConnectError):
                await fetch(http, url)

    run(go())


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def go() -> None:
        closing, kept = answer(SSE_HEAD + chunked(b"a"), keep=False), answer(SSE_HEAD + chunked(b"b"))
        async with Upstream(closing, kept) as up, client(StreamTransport()) as http:
            assert await fetch(http, up.url) == (200, b"a")
            assert await fetch(http, up.url) == (200, b"b")

    run(go())


def test_a_reused_connection_closed_without_an_answer_is_retried_once_on_a_new_one() -> None:
    # The race a keep-alive connection has: upstream closes it just as a request goes out. As
    # browsers do, a request that got no byte back on a reused connection is sent once more.
    async def go() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            return False

        first, last = answer(SSE_HEAD + chunked(b"a")), answer(SSE_HEAD + chunked(b"c"))
        async with Upstream(first, hang_up, last) as up, client(StreamTransport()) as http:
            assert await fetch(http, up.url) == (200, b"a")
            assert await fetch(http, up.url) == (200, b"c")
            assert up.connections == 2 and len(up.requests) == 3

    run(go())


def test_a_new_connection_closed_without_an_answer_is_an_error() -> None:
    async def go() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            return False

        async with Upstream(hang_up) as up, client(StreamTransport()) as http:
            with pytest.raises(httpx.ReadError):
                await fetch(http, up.url)
            assert len(up.requests) == 1

    run(go())


def test_a_request_cancelled_at_any_step_leaves_no_connection_open() -> None:
    async def go() -> None:
        hang = answer(SSE_HEAD, then=5.0)
        async with Upstream(*[hang] * 40) as up:
            transport = StreamTransport()
            async with client(transport) as http:
                for steps in range(40):
                    task = asyncio.ensure_future(fetch(http, up.url))
                    for _ in range(steps):
                        await asyncio.sleep(0)
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                    assert transport.open_connections == 0

    run(go())


def test_only_posts_to_the_responses_routes_take_the_stream_transport() -> None:
    build = httpx.Request
    assert is_stream_request(build("POST", "http://x/backend-api/codex/responses", content=b"{}"))
    assert is_stream_request(build("POST", "http://x/backend-api/codex/responses/compact", content=b"{}"))
    assert not is_stream_request(build("GET", "http://x/backend-api/codex/models"))
    assert not is_stream_request(build("POST", "http://x/oauth/token", content=b"a=b"))


def test_a_finished_answer_lets_go_of_the_request_body_at_once() -> None:
    # httpx's client ties a response and its stream in a cycle; were it left to the garbage
    # collector, every long session's megabyte body would stay in memory until a full collection.
    async def go() -> None:
        body = b'{"input":"' + b"x" * 1_000_000 + b'"}'
        async with Upstream(answer(SSE_HEAD + chunked(b"x"))) as up, client(StreamTransport()) as http:
            held = sys.getrefcount(body)
            async with http.stream("POST", up.url + URL, content=body) as response:
                assert [c async for c in response.aiter_raw()] == [b"x"]
            del response
            assert sys.getrefcount(body) == held

    gc.disable()
    try:
        run(go())
    finally:
        gc.enable()
