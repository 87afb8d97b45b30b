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
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tray.errors import AccountError, AccountNotFoundError, PoolError
from tray.proxy.access import AccessPolicy, check_headers

TOKEN_HEADER = b"x-codex-pool-token"
SESSION_HEADER = b"x-codex-pool-session"
NO_STORE = {"cache-control": "no-store"}
MAX_BODY = 1024 * 1024  # bytes; every management request is a small JSON object
Handler = Callable[[Request], Awaitable[Response]]


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


# ---- answers shared by every endpoint -------------------------------------------------------


class BadRequest(PoolError):
    """The request itself is wrong (400): a field missing, of the wrong type or out of range."""


class TooLarge(BadRequest):
    """The request body is over :data:`MAX_BODY` (413)."""


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=NO_STORE)


def ok(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status, headers=NO_STORE)


def mapped(handler: Handler) -> Handler:
    """Turn the project's errors into clear 4xx answers, in one place."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except TooLarge as exc:
            return error(413, str(exc))
        except BadRequest as exc:
            return error(400, str(exc))
        except AccountNotFoundError as exc:
            return error(404, str(exc))
        except AccountError as exc:
            return error(409, str(exc))
        except PoolError as exc:
            return error(409, str(exc))

    return run


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body; anything else is a :class:`BadRequest`.

    The size limit is checked on the declared length and while reading, so a huge (or endless)
    body is refused after :data:`MAX_BODY` bytes instead of being held in memory first."""
    too_large = TooLarge("The request body is too large for the management API.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def account_id(request: Request) -> int:
    """The ``{account_id}`` path parameter as a row id; anything else is a :class:`BadRequest`."""
    raw = str(request.path_params["account_id"])
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequest("Account ids are whole numbers.")
    return int(raw)


def field(body: dict[str, Any], name: str, kind: type, what: str) -> Any:
    """``body[name]`` when present and of type ``kind``; else a :class:`BadRequest` saying ``what``."""
    if name not in body:
        raise BadRequest(f"Missing '{name}' ({what}).")
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"'{name}' must be {what}.")
    return value
