"""A raw loopback HTTP/1.1 upstream for the responses-stream transport's tests: each request gets
the next scripted reply, byte for byte, so a test can send exactly the framing, breakage or silence
it is about."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import httpx

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
