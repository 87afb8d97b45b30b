"""A corporate forward proxy on loopback that counts what passes through it (tests only).

One port speaks all three ways a client uses a proxy: HTTP ``CONNECT host:port`` (a tunnel, what
https URLs take), an HTTP request in absolute form (``GET http://host/path``, what http URLs take)
and SOCKS5 (``CONNECT`` by name or address, with or without user name and password). Like a real
one it resolves names itself: ``hosts`` maps the names it knows (``chatgpt.test``) to loopback, so a
client that skipped the proxy could not reach them at all. With ``credentials`` set it demands them
(``407`` over HTTP, a refused login over SOCKS) and records every ``Proxy-Authorization`` it saw.

Each forwarded HTTP request travels on its own upstream connection with ``Connection: close``: the
proxy stays simple and a client simply opens a new connection for its next request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class ForwardProxy:
    hosts: dict[str, str]  # names the proxy resolves (to loopback addresses)
    credentials: tuple[str, str] | None = None
    tunnels: Counter[str] = field(default_factory=Counter)  # "host:port" -> CONNECT tunnels opened
    forwarded: Counter[str] = field(default_factory=Counter)  # "host:port" -> plain HTTP requests
    socks: Counter[str] = field(default_factory=Counter)  # "host:port" -> SOCKS5 connections
    refused: int = 0  # connections turned away (bad credentials, unknown host)
    auth_seen: list[str] = field(default_factory=list)  # Proxy-Authorization values / SOCKS logins
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, scheme: str = "http") -> str:
        """The proxy's URL with its credentials (when it has any)."""
        login = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials else ""
        return f"{scheme}://{login}127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.tunnels.values()) + sum(self.forwarded.values()) + sum(self.socks.values())

    # ---- the connection handler ------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(1)
            if first == b"\x05":
                await self._socks(reader, writer)
            else:
                await self._http(first, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _resolve(self, host: str) -> str | None:
        if host in self.hosts:
            return self.hosts[host]
        return host if host.startswith("127.") else None

    def _allowed(self, header: str | None) -> bool:
        if header is not None:
            with self._lock:
                self.auth_seen.append(header)
        if self.credentials is None:
            return True
        login = base64.b64encode(f"{self.credentials[0]}:{self.credentials[1]}".encode()).decode()
        return header == f"Basic {login}"

    async def _http(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = first + await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        auth = next((v.strip() for k, v in headers if k.strip().lower() == "proxy-authorization"), None)
        if not self._allowed(auth):
            self.refused += 1
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            address = self._resolve(host)
            if address is None:
                self.refused += 1
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            up_reader, up_writer = await asyncio.open_connection(address, int(port))
            with self._lock:
                self.tunnels[target] += 1
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._pipe(reader, writer, up_reader, up_writer)
            return
        rest = target.removeprefix("http://")
        authority, slash, path = rest.partition("/")
        host, _, port = authority.partition(":")
        address = self._resolve(host)
        if address is None:
            self.refused += 1
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        up_reader, up_writer = await asyncio.open_connection(address, int(port or 80))
        with self._lock:
            self.forwarded[f"{host}:{port or 80}"] += 1
        kept = [f"{k}:{v}" for k, v in headers
                if k.strip().lower() not in ("proxy-authorization", "proxy-connection", "connection")]
        out = "\r\n".join([f"{method} {slash}{path} {version}", *kept, "Connection: close", "", ""])
        up_writer.write(out.encode("latin-1"))
        await self._pipe(reader, writer, up_reader, up_writer)

    async def _socks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        methods = await reader.readexactly((await reader.readexactly(1))[0])
        if self.credentials is not None:
            if 2 not in methods:
                self.refused += 1
                writer.write(b"\x05\xff")
                return
            writer.write(b"\x05\x02")
            await reader.readexactly(1)  # sub-negotiation version
            user = await reader.readexactly((await reader.readexactly(1))[0])
            password = await reader.readexactly((await reader.readexactly(1))[0])
            login = f"{user.decode()}:{password.decode()}"
            with self._lock:
                self.auth_seen.append(login)
            if login != f"{self.credentials[0]}:{self.credentials[1]}":
                self.refused += 1
                writer.write(b"\x01\x01")
                return
            writer.write(b"\x01\x00")
        else:
            writer.write(b"\x05\x00")
        _, command, _, kind = await reader.readexactly(4)
        if kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        elif kind == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        else:
            await reader.readexactly(16)
            host = "::"
        port = int.from_bytes(await reader.readexactly(2), "big")
        address = self._resolve(host)
        if command != 1 or address is None:
            self.refused += 1
            writer.write(b"\x05\x04\x00\x01\x00\x00\x00\x00\x00\x00")  # host unreachable
            return
        up_reader, up_writer = await asyncio.open_connection(address, port)
        with self._lock:
            self.socks[f"{host}:{port}"] += 1
        writer.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big"))
        await self._pipe(reader, writer, up_reader, up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


@contextlib.contextmanager
def forward_proxy(hosts: dict[str, str],
                  credentials: tuple[str, str] | None = None) -> Iterator[ForwardProxy]:
    """A :class:`ForwardProxy` serving on 127.0.0.1 in its own thread until the block ends."""
    proxy = ForwardProxy(hosts, credentials)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: asyncio.AbstractServer | None = None

    def run() -> None:
        nonlocal server
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(proxy._serve, "127.0.0.1", 0))
        proxy.port = server.sockets[0].getsockname()[1]
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="forward-proxy", daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield proxy
    finally:
        def shut() -> None:
            assert server is not None
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_later(0.05, loop.stop)

        loop.call_soon_threadsafe(shut)
        thread.join(10)
        loop.close()
