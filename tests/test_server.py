"""The proxy's server thread (tray/server.py)."""

from __future__ import annotations

import socket

from tray.server import bind_socket


def test_listening_socket_is_tcp_so_answers_are_not_delayed_by_nagle() -> None:
    # asyncio turns on TCP_NODELAY only for accepted sockets whose proto is IPPROTO_TCP; a socket made
    # with proto 0 made every proxied response wait ~40 ms between its headers and its body.
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_port_in_use_is_a_clear_error_naming_port_and_key() -> None:
    import pytest

    from tray.errors import ServerError

    busy = bind_socket("127.0.0.1", 0)
    port = busy.getsockname()[1]
    try:
        with pytest.raises(ServerError) as err:
            bind_socket("127.0.0.1", port)
        assert f"Port {port}" in str(err.value) and "port = <n>" in str(err.value)
    finally:
        busy.close()


def test_non_loopback_needs_allow_remote() -> None:
    import pytest

    from tray.errors import ServerError

    with pytest.raises(ServerError, match="allow-remote"):
        bind_socket("0.0.0.0", 0)
    sock = bind_socket("0.0.0.0", 0, allow_remote=True)
    sock.close()


def test_server_thread_serves_runs_coroutines_and_stops() -> None:
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tray.server import ServerThread

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    started: list[str] = []

    async def on_start() -> None:
        started.append("yes")

    server = ServerThread(Starlette(routes=[Route("/", hello)]), "127.0.0.1", 0, on_start=on_start).start()
    try:
        assert httpx.get(server.url, trust_env=False).text == "hello"
        assert started == ["yes"]

        async def where() -> str:
            await asyncio.sleep(0)
            return "on the loop"

        assert server.submit(where()).result(5) == "on the loop"
    finally:
        server.stop()
    assert not server.thread.is_alive()
    # The port is free again.
    bind_socket("127.0.0.1", server.port).close()
