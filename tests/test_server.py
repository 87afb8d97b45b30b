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


def test_a_drop_passed_on_to_the_client_is_one_info_line_not_an_error(pool_home: object) -> None:
    import logging

    import httpx
    import pytest
    from starlette.types import Receive, Scope, Send

    from tray import logs
    from tray.paths import resolve_paths
    from tray.server import ServerThread

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        if scope["path"] == "/boom":
            raise RuntimeError("a real bug")
        # "/drop": return without the final body message, as the relay does when upstream drops

    class Seen(logging.Handler):  # what uvicorn's error logger lets through (wherever it goes)
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(f"{record.levelname} {record.getMessage()}")

    seen = Seen()
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(seen)
    log_file = logs.setup(resolve_paths())
    assert log_file is not None
    server = ServerThread(app, "127.0.0.1", 0).start()
    try:
        with pytest.raises(httpx.RemoteProtocolError):  # the client sees a broken stream
            httpx.get(server.url + "/drop", trust_env=False)
        quiet, after_drop = log_file.read_text(), list(seen.lines)
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(server.url + "/boom", trust_env=False)
    finally:
        server.stop()
        logs.teardown()
        uvicorn_log.removeHandler(seen)
        logging.getLogger().setLevel(logging.WARNING)
    assert "upstream dropped the stream after 9 bytes; passed the drop on to the client" in quiet
    assert "ERROR" not in quiet and "Traceback" not in quiet
    assert after_drop == []
    assert any(line.startswith("ERROR") for line in seen.lines)  # a real failure is still reported


def _time_wait_sockets(port: int) -> int:
    """Connections in TIME_WAIT on local ``port`` (Linux: /proc/net/tcp, state 06)."""
    from pathlib import Path

    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "06" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_quit_and_start_again_binds_over_the_time_wait_the_last_run_left() -> None:
    """The user quits and starts again within a minute: the previous server's closed connections
    sit in TIME_WAIT on the port, and the new server must still start there."""
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tray.server import ServerThread

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)])
    first = ServerThread(app, "127.0.0.1", 0).start()
    port = first.port
    try:
        for _ in range(3):  # "Connection: close": the server closes first, so TIME_WAIT is on its side
            answer = httpx.get(first.url, headers={"Connection": "close"}, trust_env=False)
            assert answer.text == "hello"
    finally:
        first.stop()
    assert _time_wait_sockets(port) > 0  # the state a restart within a minute finds
    second = ServerThread(app, "127.0.0.1", port).start()
    try:
        assert httpx.get(second.url, trust_env=False).text == "hello"
    finally:
        second.stop()


def test_a_live_listener_is_still_port_in_use_even_when_it_allows_reuse() -> None:
    import pytest

    from tray.errors import ServerError

    live = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    live.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    live.bind(("127.0.0.1", 0))
    live.listen(1)
    port = live.getsockname()[1]
    try:
        with pytest.raises(ServerError) as err:
            bind_socket("127.0.0.1", port)
        assert "is held by another program" in str(err.value)
        assert err.value.brief is not None and err.value.brief.startswith(f"port {port} is in use")
    finally:
        live.close()


def test_windows_refusals_are_read_from_winerror() -> None:
    """Windows reports socket errors as WSA codes: 10048 "in use", 10013 for ports Hyper-V, WSL2 or
    Docker reserve (not errno.EACCES, which is 13 there too)."""
    import errno

    from tray.portholder import bind_refusal, listen_option

    def windows(code: int) -> OSError:
        exc = OSError(code, "An attempt was made to access a socket in a way forbidden")
        exc.winerror = code  # type: ignore[attr-defined]  # set by CPython on Windows only
        return exc

    assert bind_refusal(windows(10048)) == "in use"
    assert bind_refusal(windows(10013)) == "reserved"
    assert bind_refusal(OSError(errno.EADDRINUSE, "Address already in use")) == "in use"
    assert bind_refusal(OSError(errno.EACCES, "Permission denied")) == "forbidden"
    assert bind_refusal(OSError(errno.ENETDOWN, "Network is down")) is None
    assert listen_option("win32") == "SO_EXCLUSIVEADDRUSE"
    assert listen_option("linux") == listen_option("darwin") == "SO_REUSEADDR"


def test_a_reserved_windows_port_says_what_to_do(monkeypatch: object) -> None:
    import pytest

    from tray import server
    from tray.errors import ServerError

    class ReservedSocket(socket.socket):
        def bind(self, address: object) -> None:
            exc = OSError(10013, "An attempt was made to access a socket in a way forbidden")
            exc.winerror = 10013  # type: ignore[attr-defined]
            raise exc

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(server.socket, "socket", ReservedSocket)
    with pytest.raises(ServerError) as err:
        bind_socket("127.0.0.1", 4466)
    text = str(err.value)
    assert "excludedportrange" in text and "port = <n>" in text
    assert err.value.brief == "port 4466 is reserved by Windows"
