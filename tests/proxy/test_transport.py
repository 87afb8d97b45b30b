"""The upstream transport: a request cancelled right after its connection opened (a client going
away, a timeout) leaves no established upstream connection behind."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from tray.errors import PoolError, ServerError
from tray.paths import resolve_paths
from tray.proxy.transport import ReclaimingTransport, orphans

STEPS = range(0, 60)  # cancel after 0, 1, 2... event-loop steps: one of them hits the window


class SilentServer:
    """A loopback TCP server that accepts and never answers; counts connections still open."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.sock.accept()[0])

    def still_open(self) -> int:
        """Connections the client has not closed (a closed one reads as end of file)."""
        count = 0
        for conn in list(self.accepted):
            conn.setblocking(False)
            try:
                while chunk := conn.recv(65536):
                    del chunk
            except BlockingIOError:
                count += 1
            except OSError:
                pass
        return count

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def server() -> Iterator[SilentServer]:
    s = SilentServer()
    yield s
    s.close()


def cancel_at_every_step(transport: httpx.AsyncBaseTransport, server: SilentServer) -> tuple[int, int]:
    """Start a request and cancel it after each number of loop steps; returns, while the client is
    still open, how many unused connections its pool holds and how many the server sees open."""

    async def go() -> tuple[int, int]:
        http = httpx.AsyncClient(transport=transport, timeout=5, trust_env=False)
        for steps in STEPS:
            task = asyncio.ensure_future(http.get(f"http://127.0.0.1:{server.port}/backend-api/wham/usage"))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        left = len(orphans(transport))
        await asyncio.sleep(0.1)
        still_open = server.still_open()
        await http.aclose()
        return left, still_open

    return asyncio.run(go())


def test_a_request_cancelled_just_after_connecting_leaves_no_connection(server: SilentServer) -> None:
    transport = ReclaimingTransport()
    assert cancel_at_every_step(transport, server) == (0, 0)  # upstream sees every connection closed
    # With httpcore 1.0.9 plain httpx leaves an orphan here (encode/httpcore#1093); where it does,
    # the window was hit and the orphan was closed. A release that fixes it makes this moot.
    if _httpcore_leaks(server):
        assert transport.reclaimed >= 1


def _httpcore_leaks(server: SilentServer) -> bool:
    orphaned, still_open = cancel_at_every_step(httpx.AsyncHTTPTransport(trust_env=False), server)
    return orphaned >= 1 and still_open >= 1


def test_an_httpx_without_the_private_pool_stops_the_engine_at_start_with_a_clear_error(
    pool_home: object,
) -> None:
    from tray.engine import Engine

    moved = httpx.AsyncHTTPTransport(trust_env=False)
    del moved._pool  # what a release that renamed or restructured the pool looks like from here
    with pytest.raises(PoolError, match=r"AsyncHTTPTransport\._pool\.connections") as caught:
        ReclaimingTransport(moved)
    assert isinstance(caught.value, ServerError)
    engine = Engine(resolve_paths(), transport=moved, import_primary=False, port=0)
    try:
        with pytest.raises(ServerError, match="Install the httpx and httpcore versions"):
            engine.start()
        assert engine.server is None
    finally:
        engine.stop()
    ReclaimingTransport()  # the installed httpx has it
