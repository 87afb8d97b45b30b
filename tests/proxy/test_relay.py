"""Reading an upstream SSE answer up to its first output event, and relaying it (real loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.runner import serving
from tray.proxy.relay import EarlyFailure, Opened, Relay, open_stream


def event(etype: str, **data: object) -> bytes:
    return f"event: {etype}\ndata: {json.dumps({'type': etype, **data})}\n\n".encode()


SCRIPTS: dict[str, list[bytes]] = {
    "ok": [event("codex.rate_limits", rate_limits={}), event("response.created"),
           event("response.in_progress"), event("response.output_text.delta", delta="Hi"),
           event("response.completed", response={"status": "completed"})],
    "overloaded": [event("response.created"), event("error", code="server_is_overloaded")],
    "empty": [event("response.created")],
    "long": [event("response.created"), *(event("response.output_text.delta", delta=f"{n:04d}" * 20)
                                         for n in range(700)),
             event("response.completed", response={"status": "completed"})],
}


async def stream(request: Request) -> Response:
    name = request.path_params["name"]

    async def body() -> AsyncIterator[bytes]:
        for chunk in SCRIPTS[name]:
            yield chunk
            await asyncio.sleep(0 if name == "long" else 0.01)

    return StreamingResponse(body(), media_type="text/event-stream")


APP = Starlette(routes=[Route("/{name}", stream)])


def test_open_stream_holds_back_until_the_first_output_event() -> None:
    async def go(url: str) -> None:
        async with httpx.AsyncClient() as http:
            response = await http.send(http.build_request("GET", f"{url}/ok"), stream=True)
            opened = await open_stream(response)
            assert isinstance(opened, Opened)
            assert [e.type for e in opened.events] == [
                "codex.rate_limits", "response.created", "response.in_progress", "response.output_text.delta"]
            rest = b"".join([chunk async for chunk in opened.chunks])
            assert b"".join(opened.held) + rest == b"".join(SCRIPTS["ok"])
            await response.aclose()

    with serving(APP) as server:
        asyncio.run(go(server.url))


def test_early_errors_and_empty_streams_are_failures_and_closed() -> None:
    async def go(url: str) -> None:
        async with httpx.AsyncClient() as http:
            for name, kind in (("overloaded", "overloaded"), ("empty", "ended")):
                response = await http.send(http.build_request("GET", f"{url}/{name}"), stream=True)
                failed = await open_stream(response)
                assert isinstance(failed, EarlyFailure) and failed.kind == kind
                assert response.is_closed

    with serving(APP) as server:
        asyncio.run(go(server.url))


def test_relay_sends_every_byte_and_reports_completion() -> None:
    ended: list[str] = []

    async def go(upstream_url: str) -> bytes:
        async with httpx.AsyncClient() as http:

            async def through(request: Request) -> Response:
                upstream = await http.send(http.build_request("GET", upstream_url + "/ok"), stream=True)
                opened = await open_stream(upstream)
                assert isinstance(opened, Opened)
                return Relay(opened, 200, [("content-type", "text/event-stream")], on_end=ended.append)

            proxy = Starlette(routes=[Route("/", through)])
            transport = httpx.ASGITransport(app=proxy)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return (await client.get("/")).content

    with serving(APP) as upstream:
        content = asyncio.run(go(upstream.url))
    assert content == b"".join(SCRIPTS["ok"])
    assert ended == ["completed"]


def test_a_slow_client_gets_a_long_answer_whole_and_in_order() -> None:
    """The client stalls while upstream sends more chunks than the relay reads ahead (QUEUE_CHUNKS):
    reading pauses and resumes, and every byte still arrives once, in order."""
    ended: list[str] = []
    messages: list[dict[str, object]] = []

    async def go(upstream_url: str) -> None:
        async with httpx.AsyncClient() as http:
            upstream = await http.send(http.build_request("GET", upstream_url + "/long"), stream=True)
            opened = await open_stream(upstream)
            assert isinstance(opened, Opened)

            async def receive() -> dict[str, object]:
                await asyncio.Event().wait()  # the client never hangs up
                return {}

            async def send(message: dict[str, object]) -> None:
                if message["type"] == "http.response.body" and len(messages) == 2:
                    await asyncio.sleep(0.5)  # a busy client: the whole answer arrives meanwhile
                messages.append(message)

            relay = Relay(opened, 200, [("content-type", "text/event-stream")], on_end=ended.append)
            await relay({"type": "http"}, receive, send)  # type: ignore[arg-type]

    with serving(APP) as upstream:
        asyncio.run(go(upstream.url))
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    assert b"".join(m["body"] for m in bodies) == b"".join(SCRIPTS["long"])  # type: ignore[misc]
    assert bodies[-1]["more_body"] is False
    assert ended == ["completed"]
