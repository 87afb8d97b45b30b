"""uvicorn on a daemon thread with its own asyncio loop; knows nothing of routes.

We bind the listening socket ourselves before uvicorn starts, so a port in use fails fast with a
:class:`ServerError` naming the port, the program holding it where the platform can tell, and the
config key, instead of a log line on another thread. uvicorn runs with the connection limits of
:mod:`tray.proxy.limits` (header timeout and size, connection cap), after the process has raised its
open-files limit and turned core dumps off.

A response that the app starts and then returns from without finishing is how the proxy passes an
upstream drop on to its client (uvicorn then cuts the connection, so the client sees a broken
stream, never a short "complete" one). :class:`PassedOnDrops` notes such a return and logs one INFO
line; :class:`QuietPassedOnDrops` keeps uvicorn's ERROR line for it out of the user's log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tray.config import is_loopback
from tray.errors import ServerError
from tray.portholder import RESERVED_HINT, Holder, bind_refusal, holder, prepare_listener
from tray.proxy import Limits, connection_cap, harden_process, protocol_for

log = logging.getLogger(__name__)

T = TypeVar("T")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
INCOMPLETE = "ASGI callable returned without completing response."  # uvicorn's line for a cut answer

# Set (in the connection's own task) when the app deliberately returned mid-response.
_passed_on_drop: contextvars.ContextVar[bool] = contextvars.ContextVar("passed_on_drop", default=False)


class PassedOnDrops:
    """ASGI wrapper: a response started but not finished when the app returns normally (no
    exception) while the client is still there is a drop passed on to the client on purpose."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = complete = gone = False
        sent = 0

        async def watched_receive() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started, complete, sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            elif message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, watched_receive, watched_send)
        if started and not complete and not gone:
            _passed_on_drop.set(True)
            log.info("upstream dropped the stream after %d bytes; passed the drop on to the client", sent)


class QuietPassedOnDrops(logging.Filter):
    """On ``uvicorn.error``: drops uvicorn's ERROR line for a response :class:`PassedOnDrops` saw
    cut on purpose; every other line (a real unfinished response, an exception) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == INCOMPLETE and _passed_on_drop.get())


def quiet_passed_on_drops() -> None:
    """Install :class:`QuietPassedOnDrops` on uvicorn's error logger (once per process)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietPassedOnDrops) for f in logger.filters):
        logger.addFilter(QuietPassedOnDrops())


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux/macOS: much less CPU per streamed chunk), else
    asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def bind_socket(host: str, port: int, *, allow_remote: bool = False) -> socket.socket:
    """Bind a listening TCP socket, or raise :class:`ServerError` saying what to change."""
    if not is_loopback(host) and not allow_remote:
        raise ServerError(
            f"Refusing to listen on {host}: it is not a loopback address. "
            "Set 'allow-remote = true' in config.toml to accept connections from other machines."
        )
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose proto is TCP;
    # with proto 0 every response waits ~40 ms (Nagle + delayed ACK) between headers and body.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # SO_REUSEADDR on POSIX (binds over the TIME_WAIT a previous run left, never next to a live
        # listener), SO_EXCLUSIVEADDRUSE on Windows: see tray.portholder.
        prepare_listener(sock)
        sock.bind((host.strip("[]"), port))
        sock.listen(256)
    except OSError as exc:
        sock.close()
        refusal = bind_refusal(exc)
        if refusal is not None:
            why, brief = "is not allowed", "is not allowed"
            if refusal == "in use":  # say who, so clients pointed here are not trusted to it
                said = (holder(port) or Holder()).describe()
                why = f"is held by another program ({said})" if said else "is already in use"
                brief = f"is in use ({said})" if said else "is in use"
            elif refusal == "reserved":
                why, brief = f"is not available: {RESERVED_HINT}", "is reserved by Windows"
            raise ServerError(
                f"Port {port} on {host} {why}. Choose another with 'port = <n>' in config.toml "
                "or 'codex-pool serve --port <n>'.",
                brief=f"port {port} {brief}",
            ) from exc
        raise ServerError(f"Could not listen on {host}:{port}: {exc.strerror or exc}",
                          brief=f"port {port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def url_for(host: str, port: int) -> str:
    """The proxy's address on ``host``:``port`` (a wildcard host is reached on 127.0.0.1)."""
    shown = f"[{host}]" if ":" in host else host
    if shown in ("0.0.0.0", "[::]"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}"


def pending_changes(running: ServerThread, host: str, port: int, allow_remote: bool) -> list[str]:
    """The settings (``host``, ``port``, ``allow-remote``) that differ from what ``running`` listens
    with: they take effect when it restarts. A port of 0 (any free port) never differs."""
    pending = []
    if host != running.host:
        pending.append("host")
    if port not in (0, running.port):
        pending.append("port")
    if allow_remote != running.allow_remote:
        pending.append("allow-remote")
    return pending


def reserve(running: ServerThread | None, host: str, port: int,
            allow_remote: bool) -> tuple[str, socket.socket]:
    """The URL a restart on ``host``:``port`` listens on, checked, and its socket, bound and listening
    already: connections made while the proxy restarts wait in its queue instead of being refused.
    On the address ``running`` has, it is that server's own socket, kept open across the restart
    (nothing binds the port again). Raises :class:`ServerError` as :func:`bind_socket` does."""
    if running is not None and host == running.host and port in (0, running.port):
        return running.url, running.sock.dup()
    sock = bind_socket(host, port, allow_remote=allow_remote)
    return url_for(host, int(sock.getsockname()[1])), sock


WS_MAX_MESSAGE = 256 * 1024 * 1024  # bytes of one client WebSocket message the server reads at most


class ServerThread:
    """Runs an ASGI app under uvicorn in a daemon thread. ``on_start``/``on_stop`` coroutines run on
    the server's loop (background tasks such as the usage poller live there)."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        allow_remote: bool = False,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        limits: Limits = Limits(),  # noqa: B008 - frozen, never mutated
        stop_timeout: float = STOP_TIMEOUT,
        shutdown_grace: float = 0.0,
        sock: socket.socket | None = None,
    ) -> None:
        self.stop_timeout = stop_timeout
        self.shutdown_grace = shutdown_grace
        # ``sock``: a socket bound (by :func:`bind_socket`) before the previous server stopped, so
        # a restart on a new address accepts connections from the first moment.
        self.sock = sock if sock is not None else bind_socket(host, port, allow_remote=allow_remote)
        self.allow_remote = allow_remote
        open_files = harden_process()
        self.limits = replace(limits, max_connections=connection_cap(open_files, limits.max_connections))
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        quiet_passed_on_drops()
        config = uvicorn.Config(
            PassedOnDrops(app),
            log_level="warning",
            lifespan="off",
            # The Responses WebSocket (tray/proxy/sockets.py): clients are pinged every 20 s and
            # dropped when silent for 20 s more; max-body-mb is checked per message by the route.
            ws="websockets-sansio",
            ws_max_size=WS_MAX_MESSAGE,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            access_log=False,
            http=protocol_for(self.limits),
            timeout_keep_alive=self.limits.keep_alive,
            proxy_headers=False,  # never trust X-Forwarded-*: clients are on this machine
            timeout_graceful_shutdown=5,
            log_config=None,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._on_start = on_start
        self._on_stop = on_stop
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"codex-pool-proxy-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return url_for(self.host, self.port)

    def _run(self) -> None:
        loop = new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()/stop(); the thread must not die silently
            self._error = exc
            log.exception("proxy server stopped with an error")
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())  # to_thread store writes
            loop.close()

    async def _serve(self) -> None:
        if self._on_start is not None:
            await self._on_start()
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            if self._on_stop is not None:
                await self._on_stop()

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self.server.started:
            self.stop()
            raise ServerError(f"The proxy did not start on port {self.port}: {self._error or 'timed out'}")
        return self

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self.loop is None or not self.thread.is_alive():
            coro.close()
            raise ServerError("The proxy is not running.")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to ``stop_timeout``), then run the
        shutdown hook to its end (up to ``shutdown_grace`` more: it stores what must not be lost,
        such as token rotations the token endpoint already answered), then close."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(self.stop_timeout)
        if self.thread.is_alive():
            self.server.force_exit = True  # stop waiting for connections; the shutdown hook still runs
            self.thread.join(self.stop_timeout + self.shutdown_grace)
        if self.thread.is_alive():
            waited = 2 * self.stop_timeout + self.shutdown_grace
            log.error("The proxy thread did not stop within %.0f s", waited)
        self.sock.close()
