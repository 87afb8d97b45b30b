"""Decoding upstream bodies piece by piece with limits, over a real loopback server."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.runner import serving
from tray.errors import UpstreamError
from tray.proxy.decoding import PIECE, BodyTooLarge, body_chunks, read_body

TEXT = b"".join(b"data: {\"n\": %d}\n\n" % n for n in range(20_000))  # about 300 kB
raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
BODIES = {
    "gzip": (gzip.compress(TEXT), "gzip"),
    "two-members": (gzip.compress(TEXT[:1000]) + gzip.compress(TEXT[1000:]), "gzip"),
    "zlib-deflate": (zlib.compress(TEXT), "deflate"),
    "raw-deflate": (raw_deflate.compress(TEXT) + raw_deflate.flush(), "deflate"),
    "identity": (TEXT, "identity"),
    "damaged": (gzip.compress(TEXT)[:50] + b"\xff" * 200 + gzip.compress(TEXT)[250:], "gzip"),
    "cut-short": (gzip.compress(TEXT)[:-100], "gzip"),
    "brotli": (b"\x0b\x02\x80hello\x03", "br"),
}


async def body(request: Request) -> Response:
    data, encoding = BODIES[request.path_params["name"]]
    return Response(data, headers={"content-encoding": encoding, "content-type": "text/plain"})


APP = Starlette(routes=[Route("/{name}", body)])


async def chunks_of(url: str, limit: int | None = None) -> list[bytes]:
    async with httpx.AsyncClient() as http:
        response = await http.send(http.build_request("GET", url), stream=True)
        try:
            return [chunk async for chunk in body_chunks(response, inflate_limit=limit)]
        finally:
            await response.aclose()


@pytest.mark.parametrize("name", ["gzip", "two-members", "zlib-deflate", "raw-deflate", "identity"])
def test_encoded_bodies_decode_whole_in_bounded_pieces(name: str) -> None:
    with serving(APP) as server:
        chunks = asyncio.run(chunks_of(f"{server.url}/{name}"))
    assert b"".join(chunks) == TEXT
    if name != "identity":
        assert max(len(c) for c in chunks) <= PIECE


@pytest.mark.parametrize("name", ["damaged", "cut-short", "brotli"])
def test_a_broken_or_unasked_encoding_is_an_upstream_error(name: str) -> None:
    with serving(APP) as server, pytest.raises(UpstreamError):
        asyncio.run(chunks_of(f"{server.url}/{name}"))


def test_inflating_past_the_limit_stops_early() -> None:
    with serving(APP) as server:
        with pytest.raises(BodyTooLarge):
            asyncio.run(chunks_of(f"{server.url}/gzip", limit=100_000))

        async def whole(limit: int) -> bytes:
            async with httpx.AsyncClient() as http:
                response = await http.send(http.build_request("GET", f"{server.url}/gzip"), stream=True)
                try:
                    return await read_body(response, limit)
                finally:
                    await response.aclose()

        assert asyncio.run(whole(len(TEXT))) == TEXT
        with pytest.raises(BodyTooLarge):
            asyncio.run(whole(len(TEXT) - 1))
