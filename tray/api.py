"""The management API under ``/api/``: JSON endpoints the pool window (``tray/ui``) calls.

``build_routes(engine)`` returns one ``Mount("/api")`` whose router sits behind
:class:`tray.apiguard.Guard` (window session or management token, Host, Origin, no CORS), and the
window page's ``Mount("/ui")``. Handlers are thin: they validate the request, call the store /
config / login / client-setup / autostart adapters, and shape the answer with :mod:`tray.apiviews`.
A rejected request changes nothing and gets a 4xx ``{"error": "..."}``; no answer ever holds an
access or refresh token.

Store calls are short SQLite calls; sync handlers run in Starlette's thread pool so they never stall
the proxy's event loop.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router

from tray import __version__, apiviews
from tray.access import AccessPolicy
from tray.apiguard import BadRequest, Guard, account_id, error, field, json_body, mapped, ok, send_json
from tray.apilogin import login_routes
from tray.apirestart import restart_routes
from tray.apisession import OPEN_PATHS, session_routes
from tray.apisetup import setup_routes
from tray.apiui import ui_routes
from tray.apiusage import usage_routes
from tray.errors import AccountError, AccountNotFoundError
from tray.models import AccountState
from tray.paths import Paths
from tray.sessions import Sessions
from tray.store import Store

MAX_ACTIVITY = 1000


class ManagedEngine(Protocol):
    """What the API needs from :class:`tray.engine.Engine`."""

    store: Store
    paths: Paths
    sessions: Sessions

    @property
    def config(self) -> Any: ...

    @property
    def url(self) -> str: ...

    @property
    def api_key(self) -> str: ...

    @property
    def ui_token(self) -> str: ...

    def reload_config(self) -> Any: ...

    def policy(self) -> AccessPolicy: ...

    def pending_restart(self) -> list[str]: ...

    def reserve_address(self) -> tuple[str, socket.socket]: ...

    def restart(self, sock: socket.socket | None = None) -> str: ...


def port_of(url: str) -> int:
    return urlsplit(url).port or 80


class AccountsApi:
    """Accounts, pool edits and status."""

    def __init__(self, engine: ManagedEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def views(self) -> list[dict[str, Any]]:
        store, now = self.engine.store, self.clock()
        cooldowns, usages = store.cooldowns(now), store.usages()
        return [
            apiviews.account_view(a, cooldowns.get(a.id), usages.get(a.id), now)
            for a in store.accounts(include_inactive=True)
        ]

    def one(self, ident: int) -> dict[str, Any]:
        for view in self.views():
            if view["id"] == ident:
                return view
        raise AccountNotFoundError(f"There is no account with id {ident}.")

    async def status(self, request: Request) -> Response:
        views = await _threaded(self.views)
        engine = self.engine
        return ok(
            {
                "version": __version__,
                # Changes when the accounts or the settings do, whichever process changed them.
                "revision": apiviews.revision(views, engine.config, engine.pending_restart()),
                "proxy_url": self.engine.url,
                "api_key": self.engine.api_key,
                "health": apiviews.health_view(views),
                "accounts": len(views),
                "config_path": str(self.engine.paths.config_file),
                "config_problems": list(getattr(getattr(self.engine, "loaded", None), "problems", ())),
                "now": self.clock(),
            }
        )

    async def list(self, request: Request) -> Response:
        return ok({"accounts": await _threaded(self.views), "now": self.clock()})

    async def patch(self, request: Request) -> Response:
        ident, body = account_id(request), await json_body(request)
        unknown = set(body) - {"label", "enabled"}
        if unknown:
            raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))} (use 'label' or 'enabled').")
        label = body.get("label")
        if "label" in body and label is not None:
            label = field(body, "label", str, "text")
            if len(label) > 100:
                raise BadRequest("Labels are at most 100 characters.")
        enabled = field(body, "enabled", bool, "true or false") if "enabled" in body else None

        def apply() -> dict[str, Any]:
            store = self.engine.store
            account = store.get(ident)
            if account is None:
                raise AccountNotFoundError(f"There is no account with id {ident}.")
            if enabled is True and account.state is AccountState.NEEDS_LOGIN:
                raise AccountError(f"{account.name} needs a new sign-in: use Re-login to turn it back on.")
            with store.atomic():
                if "label" in body:
                    store.set_label(ident, label)
                if enabled is True and account.state is AccountState.DISABLED:
                    store.set_state(ident, AccountState.ENABLED)
                elif enabled is False and account.state is not AccountState.DISABLED:
                    store.set_state(ident, AccountState.DISABLED, "Turned off by you")
            return self.one(ident)

        return ok({"account": await _threaded(apply)})

    async def move(self, request: Request) -> Response:
        ident, body = account_id(request), await json_body(request)
        index = field(body, "index", int, "a whole number (0 is first)")
        if index < 0:
            raise BadRequest("'index' must be 0 or more.")
        await _threaded(self.engine.store.move, ident, index)
        return ok({"accounts": await _threaded(self.views)})

    async def primary(self, request: Request) -> Response:
        ident = account_id(request)
        await _threaded(self.engine.store.set_primary, ident)
        return ok({"accounts": await _threaded(self.views)})

    async def delete(self, request: Request) -> Response:
        ident = account_id(request)
        await _threaded(self.engine.store.remove, ident)
        return ok({"removed": ident, "accounts": await _threaded(self.views)})

    async def activity(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "100")
        try:
            limit = int(raw)
        except ValueError as exc:
            raise BadRequest("'limit' must be a whole number.") from exc
        if not 1 <= limit <= MAX_ACTIVITY:
            raise BadRequest(f"'limit' must be between 1 and {MAX_ACTIVITY}.")
        decisions = await _threaded(self.engine.store.decisions, limit)
        return ok({"decisions": [apiviews.decision_view(d) for d in decisions]})


async def _threaded(fn: Callable[..., Any], *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def build_routes(engine: ManagedEngine, clock: Callable[[], float] = time.time) -> list[BaseRoute]:
    """The ``/api`` mount (every management endpoint behind the token/Host/Origin guard) and the
    window's page at ``/ui``."""
    def port() -> int:  # the port the proxy listens on, read per request
        return port_of(engine.url)

    accounts = AccountsApi(engine, clock)
    routes: list[BaseRoute] = [
        Route("/status", mapped(accounts.status), methods=["GET"]),
        Route("/accounts", mapped(accounts.list), methods=["GET"]),
        Route("/accounts/{account_id}", mapped(accounts.patch), methods=["PATCH"]),
        Route("/accounts/{account_id}", mapped(accounts.delete), methods=["DELETE"]),
        Route("/accounts/{account_id}/move", mapped(accounts.move), methods=["POST"]),
        Route("/accounts/{account_id}/primary", mapped(accounts.primary), methods=["POST"]),
        Route("/activity", mapped(accounts.activity), methods=["GET"]),
    ]
    extra = setup_routes(engine, clock) + login_routes(engine, clock) + usage_routes(engine, clock)
    extra += restart_routes(engine)
    extra += session_routes(engine.sessions, lambda: engine.ui_token, port)
    routes += [Route(r.path, mapped(r.endpoint), methods=r.methods) for r in extra]
    router = Router(routes=routes, default=_not_found)
    app = ExceptionMiddleware(router, handlers={HTTPException: _http_error})

    def settings() -> tuple[AccessPolicy, str]:
        host = str(getattr(engine.config, "host", "127.0.0.1"))
        return AccessPolicy(port=port(), bind_host=host), engine.ui_token

    guard = Guard(app, settings, engine.sessions.valid, OPEN_PATHS)
    return [Mount("/api", app=guard), *ui_routes(engine.policy)]


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    if status == 405:
        return error(405, f"{request.method} is not allowed on {request.url.path}.")
    return error(status, str(getattr(exc, "detail", "")) or "Bad request.")


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send_json(send, 404, {"error": f"No such management endpoint: {scope.get('path', '')}"})
