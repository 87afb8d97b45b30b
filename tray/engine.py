"""One running codex-pool proxy, wired: config, store, upstream clients, token refresh, quota
service, the proxy routes, the management API and UI, and the server thread.

``Engine(paths).start()`` returns the proxy URL; ``stop()`` ends it. The tray app and ``serve`` both
run one. Public attributes the management API and the GUI read: ``paths``, ``store``, ``config``
(the current :class:`~tray.config.Config`), ``loaded`` (with its problems), ``url``, ``ui_url``
(with a fresh one-time code each time it is read), ``sessions``, ``api_key``, ``ui_token``,
``login`` (the login service, when available), ``open_browser`` (what its browser sign-in opens
the page with), ``reload_config()``, ``attach(part)``, ``submit(coro)`` (run a coroutine on the
proxy's loop from any thread), and for settings that apply on restart ``pending_restart()``,
``reserve_address()`` and ``restart()``.

Settings travel typed: the engine holds one frozen :class:`~tray.models.Config` snapshot, swaps in
a new one when config.toml changes, and pushes it to each part that cares through its
``configure(config)`` (the quota service, the pipeline, the proxy routes, and whatever a caller
attaches), as mitmproxy's add-ons are told of changed options. No part reads the engine back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from starlette.routing import BaseRoute

from tray.api import Sessions, build_routes
from tray.auth import TIMER_INTERVAL, LoginService, OAuthClient, PrimarySync, Refresher, import_primary
from tray.config import LoadedConfig, load_config
from tray.errors import PoolError, ServerError
from tray.models import Clock, Config, ConfigInvalid, Event, EventSink
from tray.paths import Paths, api_key, ui_token, write_secret
from tray.proxy import AccessPolicy, Pipeline, ProxyRoutes, build_app, upstream_transport
from tray.quota import QuotaService
from tray.server import STOP_TIMEOUT, ServerThread, pending_changes, reserve
from tray.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

SHUTDOWN_MARGIN = 10.0  # seconds for the shutdown hook's other steps (quota tasks, HTTP client)
CONFIG_WATCH_INTERVAL = 1.0  # seconds between config.toml mtime checks
UPSTREAM_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=30.0)
UPSTREAM_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=60.0)


class Configurable(Protocol):
    """A part that follows the settings: ``configure`` takes each new snapshot. It is called from
    whichever thread reloaded the config, so it only swaps references to immutable values."""

    def configure(self, config: Config) -> None: ...


def _log_event(event: Event) -> None:
    log.warning("%s", event)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Engine:
    def __init__(
        self,
        paths: Paths,
        *,
        clock: Clock = time.time,
        events: EventSink | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        host: str | None = None,
        port: int | None = None,
        import_primary: bool = True,
        environ: dict[str, str] | None = None,
        upstream_timeout: httpx.Timeout = UPSTREAM_TIMEOUT,
        login_options: dict[str, Any] | None = None,
        refresh_interval: float = TIMER_INTERVAL,
        stop_timeout: float = STOP_TIMEOUT,
        upstream_tls: ssl.SSLContext | None = None,
        open_browser: Callable[[str], None] | None = None,
    ) -> None:
        self.paths = paths.ensure()
        self.clock = clock
        self.events: EventSink = events or _log_event
        self._transport = transport
        self._host, self._port = host, port
        self._import_primary = import_primary
        self._environ = environ
        self._timeout = upstream_timeout
        self._tls = upstream_tls  # whom upstream TLS trusts (default: the system's CAs; tests: their own)
        self._login_options = dict(login_options or {})  # LoginService keywords (tests: callback_port)
        self.open_browser = open_browser  # the browser sign-in's opener (the tray's: the system browser)
        self.loaded: LoadedConfig = load_config(paths.config_file)
        # Where tokens go is fixed for the engine's life: an edit applies on restart (see reload_config).
        first = self.loaded.config
        self._origins = {"upstream-url": first.upstream_url, "auth-url": first.auth_url}
        self._announced: dict[str, str] = {}
        self._mtime = self._config_mtime()
        self._report(self.loaded)
        self.store = Store.open(paths.db_file, clock, backup_dir=paths.backup_dir)
        self._reads: Store | None = None  # the proxy loop's own read connection (see Pipeline)
        self.api_key = api_key(paths)
        self.ui_token = ui_token(paths)
        self.sessions = Sessions()  # window codes and sessions: they die with this engine
        self.login: LoginService | None = None
        self.server: ServerThread | None = None
        self.pipeline: Pipeline | None = None
        self.quota: QuotaService | None = None
        self.refresher: Refresher | None = None
        self.http: httpx.AsyncClient | None = None
        self._watch: asyncio.Task[None] | None = None
        self._refresh_interval = refresh_interval
        self._stop_timeout = stop_timeout  # how long stopping waits for requests in flight
        self._refresh_timer: asyncio.Task[None] | None = None
        self._attached: list[Configurable] = []  # told of every new config (see attach)
        self._wired: list[Configurable] = []  # the running proxy's parts, likewise

    # ---- config --------------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def host(self) -> str:
        return self._host or self.config.host

    def _config_mtime(self) -> float | None:
        try:
            return self.paths.config_file.stat().st_mtime
        except OSError:
            return None

    def _report(self, loaded: LoadedConfig) -> None:
        if loaded.problems:
            self.events(ConfigInvalid(path=str(loaded.path), problems=loaded.messages))

    def reload_config(self) -> LoadedConfig:
        """Re-read config.toml and apply it to the next request (host/port, upstream-url and auth-url
        apply on restart)."""
        old = self.loaded.config
        self.loaded = self._keep_origins(load_config(self.paths.config_file))
        self._mtime = self._config_mtime()
        self._report(self.loaded)
        new = self.loaded.config
        for part in [*self._attached, *self._wired]:
            part.configure(new)
        if self.server is not None and (new.host, new.port, new.allow_remote) != (
            old.host, old.port, old.allow_remote
        ):
            log.warning("The new host/port settings take effect when codex-pool restarts.")
        logging.getLogger("tray").setLevel(new.log_level.upper())
        return self.loaded

    def attach(self, part: Configurable) -> None:
        """Give ``part`` the current config now and every reloaded one from then on."""
        part.configure(self.config)
        self._attached.append(part)

    def _keep_origins(self, loaded: LoadedConfig) -> LoadedConfig:
        """``loaded`` with the upstream and sign-in URLs the engine started with. A new value is
        logged once, naming its origin, so an edit the user did not make is seen in the log before
        a restart sends any token there."""
        new = loaded.config
        for key, value in (("upstream-url", new.upstream_url), ("auth-url", new.auth_url)):
            if value != self._origins[key] and self._announced.get(key) != value:
                log.warning("%s in %s now points at %s; codex-pool keeps using %s until it restarts.",
                            key, loaded.path, _origin(value), _origin(self._origins[key]))
            self._announced[key] = value
        kept = replace(new, upstream_url=self._origins["upstream-url"], auth_url=self._origins["auth-url"])
        return replace(loaded, config=kept)

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(CONFIG_WATCH_INTERVAL)
            if self._config_mtime() != self._mtime:
                await asyncio.to_thread(self.reload_config)

    # ---- addresses -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.server is None:
            raise ServerError("The proxy is not running.")
        return self.server.url

    @property
    def ui_url(self) -> str:
        """The window's address with a fresh one-time code (good for a minute, once)."""
        return f"{self.url}/ui/#code={self.sessions.mint()}"

    def policy(self) -> AccessPolicy:
        port = self.server.port if self.server is not None else (self._port or self.config.port)
        return AccessPolicy(port=port, bind_host=self.host, allow_remote=self.config.allow_remote)

    # ---- lifecycle -----------------------------------------------------------------------------

    def _build(self) -> list[BaseRoute]:
        environ = os.environ if self._environ is None else self._environ
        transport = upstream_transport(environ, self.config.upstream_proxy, self._transport,
                                       limits=UPSTREAM_LIMITS, verify=self._tls or True)
        http = httpx.AsyncClient(timeout=self._timeout, transport=transport, follow_redirects=False,
                                 trust_env=False)
        self.http = http
        self._reads = Store.open(self.paths.db_file, self.clock, backup_dir=self.paths.backup_dir)
        config = self.config
        oauth = OAuthClient(http, config.auth_url, self.clock)
        sync = PrimarySync(self.store, self.clock, self._environ)
        self.refresher = Refresher(self.store, oauth, sync, self.clock, self.events)
        self.quota = QuotaService(self.store, http, config.upstream_url, clock=self.clock, events=self.events,
                                  low_percent=config.quota_low_percent, reads=self._reads,
                                  refresher=self.refresher)
        self.pipeline = Pipeline(store=self.store, quota=self.quota, refresher=self.refresher, http=http,
                                 config=config, clock=self.clock, events=self.events, reads=self._reads)
        self._wired = [self.quota, self.pipeline]
        self.login = self._login_service(oauth)
        return build_routes(self)

    def _login_service(self, oauth: OAuthClient) -> LoginService:
        options: dict[str, Any] = {"open_browser": self.open_browser, **self._login_options}
        return LoginService(self.store, oauth, self.clock, self.events, **options)

    def start(self, port: int | None = None, host: str | None = None,
              allow_remote: bool | None = None, sock: socket.socket | None = None) -> str:
        """Start the proxy thread; returns its URL. Raises :class:`ServerError` (port in use...).
        ``port``/``host``/``allow_remote`` replace the configured ones for this start, and ``sock``
        (bound already) the address altogether (restarts)."""
        if self.server is not None:
            return self.url
        if self._import_primary and not self.store.accounts():
            try:
                import_primary(self.store, self.clock, self._environ)
            except PoolError as exc:
                log.warning("Could not import your Codex/opencode login: %s", exc)
        extra = self._build()
        assert self.pipeline is not None
        routes = ProxyRoutes(self.pipeline, api_key=self.api_key, policy=self.policy, config=self.config,
                             environ=os.environ if self._environ is None else self._environ)
        self._wired.append(routes)
        app = build_app(routes, extra)
        target_host, target_port, target_remote = self._target()
        try:
            remote = target_remote if allow_remote is None else allow_remote
            self.server = ServerThread(app, host or target_host, target_port if port is None else port,
                                       allow_remote=remote, sock=sock,
                                       on_start=self._on_start, on_stop=self._on_stop,
                                       stop_timeout=self._stop_timeout, shutdown_grace=self._shutdown_grace())
            self.server.start()
        except PoolError:
            # Nothing started: let go of what _build opened, so a later start (the tray retries)
            # begins afresh and leaks nothing.
            self.server = None
            if self._reads is not None:
                self._reads.close()
                self._reads = None
            raise
        self._write_instance()
        log.info("codex-pool proxy listening on %s", self.url)
        return self.url

    def _shutdown_grace(self) -> float:
        """How long stopping may take after the requests: the refresher's drain (a token call the
        endpoint already redeemed is awaited to its bound and stored) plus a margin for the rest."""
        drain = self.refresher.call_timeout if self.refresher is not None else 0.0
        return drain + SHUTDOWN_MARGIN

    async def _on_start(self) -> None:
        assert self.quota is not None
        self.quota.start()
        self._watch = asyncio.ensure_future(self._watch_config())
        self._refresh_timer = asyncio.ensure_future(self._refresh_tokens())

    async def _refresh_tokens(self) -> None:
        """The proactive refresh timer: tokens are renewed a few minutes before they expire, even
        for accounts no request has used lately (one pass at start, then every interval). A pass
        that fails for any reason is logged and the timer goes on, waiting longer after each
        failure in a row (up to four intervals)."""
        assert self.refresher is not None
        failures = 0
        while True:
            try:
                accounts = await asyncio.to_thread(self.store.accounts, False)
                await self.refresher.refresh_due_accounts(accounts)
                failures = 0
            except PoolError as exc:
                failures += 1
                log.warning("Proactive token refresh: %s", exc)
            except Exception:
                failures += 1
                log.exception("Proactive token refresh failed; trying again later")
            await asyncio.sleep(self._refresh_interval * (min(2**failures, 4) if failures else 1))

    async def _on_stop(self) -> None:
        for task in (self._watch, self._refresh_timer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.login is not None:
            await self.login.close()
        if self.quota is not None:
            await self.quota.stop()
        if self.pipeline is not None:
            await self.pipeline.drain()
        if self.refresher is not None:
            # A token endpoint that has answered has spent the old refresh token: store its answer
            # before the client that carries the calls goes away.
            await self.refresher.drain()
        if self.http is not None:
            await self.http.aclose()

    # ---- restart -------------------------------------------------------------------------------

    def _target(self) -> tuple[str, int, bool]:
        """Where the proxy listens after a (re)start: the config's host, port and allow-remote; the
        command line's ``--host``/``--port`` still win."""
        port = self.config.port if self._port is None else self._port
        return self.host, port, self.config.allow_remote

    def pending_restart(self) -> list[str]:
        """The settings saved but not in effect until the proxy restarts (``host``, ``port``,
        ``allow-remote``); empty while it is stopped."""
        return [] if self.server is None else pending_changes(self.server, *self._target())

    def reserve_address(self) -> tuple[str, socket.socket]:
        """Where a restart listens, checked and bound already (:func:`tray.server.reserve`). Call it
        off the event loop."""
        return reserve(self.server, *self._target())

    def restart(self, sock: socket.socket | None = None) -> str:
        """Stop the proxy and start it again with the current settings, on ``sock`` when given (from
        :meth:`reserve_address`). Returns the new URL. When the proxy cannot start there, it comes
        back where it was and the error is raised. Never call it on the proxy's own loop: stopping
        waits for that loop's requests."""
        old = self.server
        if old is None:
            return self.start(sock=sock)
        self._stop_server()
        try:
            return self.start(sock=sock)
        except PoolError:
            if sock is not None:
                sock.close()
            log.warning("The proxy could not restart on its new address; it goes on at %s", old.url)
            self.start(old.port, old.host, old.allow_remote)
            raise

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
            self._remove_instance()
        if self._reads is not None:
            self._reads.close()
            self._reads = None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the proxy's event loop (from any thread)."""
        if self.server is None:
            coro.close()
            raise ServerError("The proxy is not running.")
        return self.server.submit(coro)

    def stop(self) -> None:
        self._stop_server()
        self.store.close()

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- instance file -------------------------------------------------------------------------

    def _write_instance(self) -> None:
        data = {"pid": os.getpid(), "url": self.url, "started_at": self.clock()}
        write_secret(self.paths.instance_file, json.dumps(data) + "\n")

    def _remove_instance(self) -> None:
        try:
            data = json.loads(self.paths.instance_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("pid") == os.getpid():
            self.paths.instance_file.unlink(missing_ok=True)
