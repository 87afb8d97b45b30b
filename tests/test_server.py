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
