"""One upstream connection of the responses-stream transport against a raw loopback server: answers
arrive whole and in order, whatever their framing; a broken, silent or unasked-for answer is the httpx
error the proxy already handles, never a short or mixed-up answer; HTTPS checks the server."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from pathlib import Path

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
from tray.proxy.streams import StreamTransport


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


def test_a_header_that_would_split_the_request_is_refused() -> None:
    async def go() -> None:
        async with Upstream(answer(SSE_HEAD + chunked(b"x"))) as up, client(StreamTransport()) as http:
            request = http.build_request("POST", up.url + URL, content=BODY,
                                         headers=[(b"x-evil", b"a\r\nx-injected: 1")])
            with pytest.raises(httpx.LocalProtocolError):
                await http.send(request)
            assert up.requests == []

    run(go())


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
            async with client(StreamTransport(verify=trusting)) as http:
                assert await fetch(http, up.url) == (200, b"".join(EVENTS))
                assert await fetch(http, up.url) == (200, b"".join(EVENTS))
            async with client(StreamTransport()) as http:  # the system's CAs: this server is nobody
                with pytest.raises(httpx.ConnectError):
                    await fetch(http, up.url)
            assert up.connections == 1  # both answers on one connection (the refused one never got in)

    run(go())
