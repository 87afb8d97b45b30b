"""Run an ASGI app on a real loopback socket in a background thread (tests only)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class ServerThread:
    """A uvicorn server on 127.0.0.1:<port> in a daemon thread with its own event loop."""

    def __init__(self, app: Any, port: int = 0, *, tls_pem: str | None = None,
                 ping_interval: float = 1.0) -> None:
        """``tls_pem``: a PEM file with the key and certificate chain to serve HTTPS with;
        ``ping_interval``: seconds between WebSocket pings (and the pong timeout)."""
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is TCP, and
        # without it every response waits ~40 ms (Nagle + delayed ACK) between headers and body.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port: int = self.sock.getsockname()[1]
        # WebSockets as the backend serves them: pinged every ``ping_interval`` seconds (a client that
        # does not answer within it is dropped), permessage-deflate when the client offers it.
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio",
                                ws_ping_interval=ping_interval, ws_ping_timeout=ping_interval,
                                ssl_certfile=tls_pem, ssl_keyfile=tls_pem)
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name=f"fake-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        self.loop.close()

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@contextmanager
def serving(app: Any, *, tls_pem: str | None = None, ping_interval: float = 1.0) -> Iterator[ServerThread]:
    server = ServerThread(app, tls_pem=tls_pem, ping_interval=ping_interval).start()
    try:
        yield server
    finally:
        server.stop()
