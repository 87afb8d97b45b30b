"""The door of the management API: management token, Host and Origin checks, no CORS.

An ASGI wrapper around the ``/api`` router. It refuses, before any handler runs:

* a ``Host`` that is not the loopback address with the proxy's own port (DNS rebinding);
* a browser ``Origin`` (or ``Sec-Fetch-Site: cross-site``) that is not the proxy's own origin;
* every CORS preflight (``OPTIONS``): the UI is same-origin, so nothing cross-origin is ever allowed;
* a request with neither a live window session (``X-Codex-Pool-Session``, see
  :mod:`tray.api.sessions`) nor the owner's management token (``X-Codex-Pool-Token`` or
  ``Authorization: Bearer``, for the user's own scripts: it is never put in an address). The client
  key is *not* a management token; it is refused like any other wrong value. Only the entrances of
  :mod:`tray.api.session` (which take a one-time code or the owner's proof) need neither.

Refusals are JSON ``{"error": ...}`` and never echo a header value.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tray.proxy import AccessPolicy, check_headers

TOKEN_HEADER = b"x-codex-pool-token"
SESSION_HEADER = b"x-codex-pool-session"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def presented_token(scope: Scope) -> str | None:
    """The token the request carries: ``X-Codex-Pool-Token`` or ``Authorization: Bearer``."""
    direct = _header(scope, TOKEN_HEADER)
    if direct:
        return direct.strip()
    auth = _header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def refusal(scope: Scope, policy: AccessPolicy, token: str, live: Callable[[str], bool],
            open_paths: frozenset[str] = frozenset()) -> tuple[int, str] | None:
    """Why this request may not reach the API (status, message), or None when it may.
    ``live(session)`` says whether a window session is valid; ``open_paths`` (below the mount)
    need no credential."""
    denied = check_headers(policy, scope.get("headers", []))
    if denied is not None:
        return denied.status, denied.message
    if (_header(scope, b"sec-fetch-site") or "").lower() == "cross-site":
        return 403, "Cross-site requests to the management API are not allowed."
    if scope.get("method") == "OPTIONS":
        return 403, "The management API does not take cross-origin (CORS) requests."
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if path.startswith(root) and path[len(root):] in open_paths:
        return None
    session = _header(scope, SESSION_HEADER)
    if session and live(session.strip()):
        return None
    given = presented_token(scope)
    if given and hmac.compare_digest(given.encode(), token.encode()):
        return None
    if session:
        return 401, "This window's session has ended: open the window again from the tray menu."
    if not given:
        return 401, "Not signed in to the pool window: open it from the tray menu or 'codex-pool status'."
    return 401, "Wrong management token (the client key does not open the management API)."


class Guard:
    """ASGI wrapper: run :func:`refusal`, then the wrapped app. Settings are read per request
    (``settings()`` gives the current access policy and token), so a port or token change applies at once."""

    def __init__(self, app: ASGIApp, settings: Callable[[], tuple[AccessPolicy, str]],
                 live: Callable[[str], bool] = lambda session: False,
                 open_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.settings = settings
        self.live = live
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        policy, token = self.settings()
        why = refusal(scope, policy, token, self.live, self.open_paths)
        if why is None:
            await self.app(scope, receive, send)
            return
        await send_json(send, why[0], {"error": why[1]})


async def send_json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
