"""The management API under ``/api/``: JSON endpoints the pool window (``tray/ui``) calls.

``build_routes(engine)`` returns one ``Mount("/api")`` whose router sits behind
:class:`tray.api.guard.Guard` (window session or management token, Host, Origin, no CORS), and the
window page's ``Mount("/ui")``. Handlers are thin: they validate the request, call the store /
config / login / client-setup / autostart adapters, and shape the answer with :mod:`tray.api.views`.
A rejected request changes nothing and gets a 4xx ``{"error": "..."}``; no answer ever holds an
access or refresh token.

Store calls are short SQLite calls; sync handlers run in Starlette's thread pool so they never stall
the proxy's event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router

from tray.api.accounts import AccountsApi
from tray.api.base import ManagedEngine, error, mapped, port_of
from tray.api.guard import Guard, send_json
from tray.api.login import login_routes
from tray.api.owner import Probe, probe
from tray.api.restart import restart_routes
from tray.api.session import OPEN_PATHS, session_routes
from tray.api.sessions import Sessions
from tray.api.setup import setup_routes
from tray.api.ui import ui_routes
from tray.api.usage import usage_routes
from tray.proxy import AccessPolicy

__all__ = ["ManagedEngine", "Probe", "Sessions", "build_routes", "probe"]


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
        host = engine.config.host
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
