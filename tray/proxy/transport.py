"""The upstream HTTP transport: the responses stream over :mod:`tray.proxy.streams`, everything else
over httpx's own, plus cleanup after a cancelled request.

:class:`UpstreamTransport` is what the engine's one ``httpx.AsyncClient`` sends through: a ``POST``
to a responses route (:func:`~tray.proxy.streams.is_stream_request`) goes to a
:class:`~tray.proxy.streams.StreamTransport`, whose answers are parsed in C; the usage endpoint,
the model list and token refreshes go to httpx's transport (:class:`ReclaimingTransport`). Each
keeps its own pool, with the same limits.

httpcore 1.0.9 (encode/httpcore#1093) leaks a connection when a request is cancelled in the one
event-loop step between its TCP connect and the moment the connection is marked active: the pool
keeps it as a ``NEW`` connection that no request owns, it is never idle, expired or closed, and
the socket stays established (the server applies its keep-alive timeout only after a first request).
:class:`ReclaimingTransport` closes such orphans when a request through it is cancelled. Closing a
``NEW`` connection another request is about to use is harmless: that request gets
``ConnectionNotAvailable`` inside the pool and the pool opens a fresh connection for it.

That cleanup reads httpx's private ``AsyncHTTPTransport._pool`` (httpcore's pool and its
``connections``). pyproject.toml bounds httpx and httpcore to the minor versions this was tested
with, and :class:`ReclaimingTransport` checks at construction (engine start) that the attribute is
still there: a release that moved it stops the proxy with :class:`~tray.errors.HttpLibraryError`
instead of quietly leaking connections again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

import httpx

from tray.errors import HttpLibraryError
from tray.proxy.streams import StreamTransport, is_stream_request

log = logging.getLogger(__name__)


def check_pool(transport: httpx.AsyncHTTPTransport) -> None:
    """Raise :class:`HttpLibraryError` unless ``transport`` has the httpcore pool :func:`orphans`
    reads (``_pool.connections``, a list)."""
    pool = getattr(transport, "_pool", None)
    if not isinstance(getattr(pool, "connections", None), list):
        raise HttpLibraryError(
            f"The installed httpx {httpx.__version__} no longer has the connection pool codex-pool "
            "cleans up after cancelled requests (AsyncHTTPTransport._pool.connections). Install the "
            "httpx and httpcore versions codex-pool's pyproject.toml allows."
        )


def orphans(transport: httpx.AsyncBaseTransport) -> list[Any]:
    """The pool's HTTP/1.1 connections that are connected but have never carried a request."""
    pool = getattr(transport, "_pool", None)  # httpx.AsyncHTTPTransport's httpcore pool
    connections = getattr(pool, "connections", None)
    if not isinstance(connections, list):
        return []
    return [c for c in connections if ", HTTP/1.1, NEW," in str(c.info())]


class ReclaimingTransport(httpx.AsyncBaseTransport):
    """Wraps ``inner`` (default: an :class:`httpx.AsyncHTTPTransport` with ``limits``). Raises
    :class:`HttpLibraryError` when an ``AsyncHTTPTransport`` lacks the pool it cleans up."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, *,
                 limits: httpx.Limits | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport(limits=limits or httpx.Limits(), trust_env=False)
        if isinstance(self.inner, httpx.AsyncHTTPTransport):
            check_pool(self.inner)
        self.reclaimed = 0  # connections closed after a cancellation (tests read it)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except asyncio.CancelledError:
            cleanup = asyncio.ensure_future(self._reclaim())
            with contextlib.suppress(BaseException):  # a second cancel must not skip the cleanup
                await asyncio.shield(cleanup)
            raise

    async def _reclaim(self) -> None:
        for connection in orphans(self.inner):
            with contextlib.suppress(Exception):
                await connection.aclose()
                self.reclaimed += 1
                log.debug("closed an upstream connection a cancelled request left unused")

    async def aclose(self) -> None:
        await self.inner.aclose()


class UpstreamTransport(httpx.AsyncBaseTransport):
    """Responses streams to a :class:`StreamTransport`, the rest to a :class:`ReclaimingTransport`;
    both with ``limits`` and trusting what ``verify`` says (httpx's meaning)."""

    def __init__(self, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        self.streams = StreamTransport(limits, verify=verify)
        self.other = ReclaimingTransport(
            httpx.AsyncHTTPTransport(limits=limits, verify=verify, trust_env=False))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if is_stream_request(request):
            return await self.streams.handle_async_request(request)
        return await self.other.handle_async_request(request)

    async def aclose(self) -> None:
        await self.streams.aclose()
        await self.other.aclose()
