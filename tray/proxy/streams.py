"""The upstream transport for the responses stream: pooled :class:`~tray.proxy.connection.Connection`
objects behind httpx's transport interface.

:class:`StreamTransport` serves the requests :func:`is_stream_request` picks (a ``POST`` to a
responses route with its body in memory, as the proxy sends them); :class:`UpstreamTransport` sends
those to it and everything else (usage, model list, token refresh) to httpx's own transport, so the
rest of the proxy sees one ``httpx.AsyncClient`` either way.

The pool keeps up to ``max_keepalive_connections`` idle connections per process for
``keepalive_expiry`` seconds and opens at most ``max_connections`` at once; a request that finds
none free within the pool timeout gets ``httpx.PoolTimeout``, as with httpx's own pool. A connection
goes back to the pool only after its answer was read to the end; an answer given up half-way
(the client left, a failover) closes it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tray.proxy.connection import Connection

STREAM_PATHS = (b"/responses", b"/responses/compact")
_SPENT = httpx.ByteStream(b"")  # what a closed answer's stream becomes
_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]  # scheme, host, port


def is_stream_request(request: httpx.Request) -> bool:
    """A ``POST`` to a responses route with its whole body already in memory."""
    if request.method != "POST" or not request.url.raw_path.split(b"?", 1)[0].endswith(STREAM_PATHS):
        return False
    return isinstance(request.stream, httpx.ByteStream)


class StreamTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over pooled :class:`Connection`\\ s; see the module docstring."""

    def __init__(self, limits: httpx.Limits | None = None, *, verify: ssl.SSLContext | bool = True) -> None:
        limits = limits or httpx.Limits()
        self.max_connections = limits.max_connections
        self.max_idle = limits.max_keepalive_connections
        self.expiry = limits.keepalive_expiry
        self._verify = verify  # httpx's meaning: a context to use, True for certifi's CAs, False for none
        self._ssl: ssl.SSLContext | None = None
        self._idle: dict[Origin, list[Connection]] = {}  # by origin, newest last
        self._idle_count = 0
        self._open = 0  # connections open or being opened
        self._slots: list[asyncio.Future[None]] = []  # requests waiting for max_connections

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        head, body = _encode(request)
        url = request.url
        origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        for retry in (True, False):
            conn, reused = await self._acquire(origin, timeouts)
            try:
                status, reason, headers = await conn.send(request, head, body, timeouts)
            except httpx.ReadError:
                self._release(conn)
                if reused and retry:  # the server closed the idle connection as we took it
                    continue
                raise
            except BaseException:
                self._release(conn)
                raise
            break
        body_stream = _Body(self, conn, timeouts.get("read"))
        response = httpx.Response(status, headers=headers, stream=body_stream, request=request,
                                  extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason})
        body_stream.response = response
        return response

    @property
    def open_connections(self) -> int:
        """Connections open (carrying an answer or idle) or being opened."""
        return self._open

    async def aclose(self) -> None:
        idle, self._idle, self._idle_count = self._idle, {}, 0
        for conns in idle.values():
            for conn in conns:
                conn.close()
                self._open -= 1

    # ---- the pool -------------------------------------------------------------------------------

    async def _acquire(self, origin: Origin, timeouts: dict[str, Any]) -> tuple[Connection, bool]:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            if conn.lost is None and (self.expiry is None or loop.time() - conn.idle_since < self.expiry):
                return conn, True
            conn.close()
            self._open -= 1
        await self._slot(loop, timeouts.get("pool"))
        try:
            conn = await self._connect(loop, origin, timeouts.get("connect"))
        except BaseException:
            self._open -= 1
            self._next_slot()
            raise
        return conn, False

    async def _slot(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        if self.max_connections is not None and self._open >= self.max_connections and self._idle_count:
            oldest = min((c for conns in self._idle.values() for c in conns), key=lambda c: c.idle_since)
            self._idle[oldest.origin].remove(oldest)  # an idle connection elsewhere makes room
            self._idle_count -= 1
            oldest.close()
            self._open -= 1
        while self.max_connections is not None and self._open >= self.max_connections:
            waiter: asyncio.Future[None] = loop.create_future()
            self._slots.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                raise httpx.PoolTimeout("every upstream connection is in use") from None
            finally:
                if waiter in self._slots:
                    self._slots.remove(waiter)
        self._open += 1

    def _next_slot(self) -> None:
        while self._slots:
            waiter = self._slots.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, loop: asyncio.AbstractEventLoop, origin: Origin,
                       timeout: float | None) -> Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                if isinstance(self._verify, ssl.SSLContext):
                    self._ssl = self._verify
                else:
                    self._ssl = httpx.create_ssl_context(verify=self._verify, trust_env=False)
                    self._ssl.set_alpn_protocols(["http/1.1"])
            context = self._ssl
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: Connection(origin, loop), host, port,
                                                       ssl=context, server_hostname=host if context else None)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"could not connect to {host}:{port} ({exc})") from exc
        return conn

    def _release(self, conn: Connection) -> None:
        """Give ``conn`` back after an answer: kept when its answer was read to the end."""
        conn.done()
        if conn.reusable and (self.max_idle is None or self._idle_count < self.max_idle):
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.origin, []).append(conn)
            self._idle_count += 1
        else:
            conn.close()
            self._open -= 1
        self._next_slot()


class _Body(httpx.AsyncByteStream):
    """An answer's body: each read hands out everything that arrived since the previous one.

    httpx's client wraps it in a stream that points back at the response: a cycle that only the
    garbage collector frees, and with it the request and its body (megabytes for a long session),
    long after the answer. Closing the body breaks the cycle, so they go as soon as the answer does."""

    def __init__(self, pool: StreamTransport, conn: Connection, timeout: float | None) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self._timeout = timeout
        self.response: httpx.Response | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        while chunk := await conn.read(self._timeout):
            yield chunk

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._release(conn)
        response, self.response = self.response, None
        if response is not None:
            response.stream = _SPENT


def _encode(request: httpx.Request) -> tuple[bytes, bytes]:
    """The request's head and body as they go on the wire."""
    body = request.content
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
            raise httpx.LocalProtocolError(f"a header cannot be sent: {name.decode('latin-1')!r}")
        lines.append(b"%s: %s" % (name, value))
    lines += [b"", b""]
    return b"\r\n".join(lines), body

