"""The responses-stream transport against real loopback servers: answers arrive whole and in order,
connections are kept only when that is safe, and every failure is the httpx error the proxy
already handles (a broken stream, a timeout, a full pool, a refused connection)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tray.proxy.streams import StreamTransport, is_stream_request

URL = "/backend-api/codex/responses"
BODY = b'{"model":"gpt-5.5","input":"hi"}'
Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]  # True: keep the connection


def chunked(*events: bytes, end: bool = True) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
    return out + (b"0\r\n\r\n" if end else b"")


SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENTS = [b"event: response.output_text.delta\ndata: {\"delta\":\"%d\"}\n\n" % n for n in range(300)]


class Upstream:
    """A loopback HTTP/1.1 server answering each request with the next scripted reply; counts the
    connections it accepted and what it received."""

    def __init__(self, *replies: Reply, tls: ssl.SSLContext | None = None) -> None:
        self.replies = list(replies)
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                if not await self.replies.pop(0)(reader, writer):
                    break
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away
        finally:
            writer.close()
            self.tasks.discard(task)


def answer(data: bytes, *, keep: bool = True, then: float = 0.0) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        if then:
            await asyncio.sleep(then)
        return keep

    return reply


def client(transport: httpx.AsyncBaseTransport, **timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, **timeout), trust_env=False)


async def fetch(http: httpx.AsyncClient, base: str) -> tuple[int, bytes]:
    async with http.stream("POST", base + URL, content=BODY) as response:
        return response.status_code, b"".join([chunk async for chunk in response.aiter_bytes()])


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_an_answer_arrives_whole_and_the_connection_is_kept_for_the_next() -> None:
    async def go() -> None:
        whole = SSE_HEAD + chunked(*EVENTS)
        async with Upstream(answer(whole), answer(whole), answer(whole)) as up, \
                client(StreamTransport()) as http:
            for _ in range(3):
                assert await fetch(http, up.url) == (200, b"".join(EVENTS))
            assert up.connections == 1
            assert all(r.endswith(b"\r\n\r\n" + BODY) for r in up.requests)
            assert b"content-length: %d" % len(BODY) in up.requests[0].lower()

    run(go())


def test_a_compressed_answer_is_decoded_by_httpx_as_before() -> None:
    async def go() -> None:
        packed = gzip.compress(b"".join(EVENTS))
        head = SSE_HEAD.replace(b"\r\n\r\n", b"\r\ncontent-encoding: gzip\r\n\r\n")
        async with Upstream(answer(head + chunked(packed[:100], packed[100:]))) as up, \
                client(StreamTransport()) as http:
            assert await fetch(http, up.url) == (200, b"".join(EVENTS))

    run(go())


def test_an_answer_cut_off_midway_is_an_error_never_a_short_answer() -> None:
    async def go() -> None:
        async with Upstream(answer(SSE_HEAD + chunked(*EVENTS[:5], end=False), keep=False)) as up, \
                client(StreamTransport()) as http:
            with pytest.raises(httpx.ReadError):
                await fetch(http, up.url)

    run(go())


def test_an_answer_framed_by_the_connection_end_is_read_to_it_and_not_reused() -> None:
    async def go() -> None:
        plain = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n" + b"".join(EVENTS)
        async with Upstream(answer(plain, keep=False), answer(SSE_HEAD + chunked(b"x"))) as up, \
                client(StreamTransport()) as http:
            assert await fetch(http, up.url) == (200, b"".join(EVENTS))
            assert await fetch(http, up.url) == (200, b"x")
            assert up.connections == 2

    run(go())


def test_an_error_answer_with_a_length_is_read_and_the_connection_kept() -> None:
    async def go() -> None:
        error = b'{"error":{"type":"usage_limit_reached"}}'
        head = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
        async with Upstream(answer(head + b"content-length: %d\r\n\r\n" % len(error) + error),
                            answer(SSE_HEAD + chunked(b"ok"))) as up, client(StreamTransport()) as http:
            assert await fetch(http, up.url) == (429, error)
            assert await fetch(http, up.url) == (200, b"ok")
            assert up.connections == 1

    run(go())


def test_silence_past_the_read_timeout_is_a_read_timeout() -> None:
    async def go() -> None:
        async with Upstream(answer(SSE_HEAD + chunked(b"first", end=False), then=2.0)) as up, \
                client(StreamTransport(), read=0.2) as http:
            with pytest.raises(httpx.ReadTimeout):
                await fetch(http, up.url)

    run(go())


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


def test_an_idle_connection_that_hears_from_upstream_is_not_used_again() -> None:
    async def go() -> None:
        hung_up = asyncio.Event()

        async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            writer.write(SSE_HEAD + chunked(b"a"))
            await writer.drain()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale")  # nobody asked for it
            await writer.drain()
            await reader.read()  # until the client hangs up on this connection
            hung_up.set()
            return False

        later = answer(SSE_HEAD + chunked(b"b"))
        async with Upstream(chatty, later) as up, client(StreamTransport()) as http:
            assert await fetch(http, up.url) == (200, b"a")
            await hung_up.wait()
            assert await fetch(http, up.url) == (200, b"b")
            assert up.connections == 2

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


def test_a_header_that_would_split_the_request_is_refused() -> None:
    async def go() -> None:
        async with Upstream(answer(SSE_HEAD + chunked(b"x"))) as up, client(StreamTransport()) as http:
            request = http.build_request("POST", up.url + URL, content=BODY,
                                         headers=[(b"x-evil", b"a\r\nx-injected: 1")])
            with pytest.raises(httpx.LocalProtocolError):
                await http.send(request)
            assert up.requests == []

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


def test_https_verifies_the_server_and_streams_as_over_http(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def go() -> None:
        whole = SSE_HEAD + chunked(*EVENTS)
        async with Upstream(answer(whole), answer(whole), tls=served) as up:
            async with client(StreamTransport(ssl_context=trusting)) as http:
                assert await fetch(http, up.url) == (200, b"".join(EVENTS))
                assert await fetch(http, up.url) == (200, b"".join(EVENTS))
            async with client(StreamTransport()) as http:  # the system's CAs: this server is nobody
                with pytest.raises(httpx.ConnectError):
                    await fetch(http, up.url)
            assert up.connections == 1  # both answers on one connection (the refused one never got in)

    run(go())
