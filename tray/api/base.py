"""What every management API module shares: the engine it manages (:class:`ManagedEngine`), and the
request and answer helpers (JSON bodies with a size limit, fields, errors mapped to 4xx in one place).

A leaf of the ``api`` room: the endpoint modules and the assembly in :mod:`tray.api` import it, it
imports none of them.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tray.api.sessions import Sessions
from tray.config import LoadedConfig
from tray.errors import AccountError, AccountNotFoundError, PoolError
from tray.models import Config
from tray.paths import Paths
from tray.proxy import AccessPolicy, read_limited
from tray.store import Store

NO_STORE = {"cache-control": "no-store"}
MAX_BODY = 1024 * 1024  # bytes; every management request is a small JSON object
Handler = Callable[[Request], Awaitable[Response]]


class ManagedEngine(Protocol):
    """What the API needs from :class:`tray.engine.Engine`."""

    store: Store
    paths: Paths
    sessions: Sessions
    loaded: LoadedConfig

    @property
    def config(self) -> Config: ...

    @property
    def url(self) -> str: ...

    @property
    def api_key(self) -> str: ...

    @property
    def ui_token(self) -> str: ...

    def reload_config(self) -> LoadedConfig: ...

    def policy(self) -> AccessPolicy: ...

    def pending_restart(self) -> list[str]: ...

    def reserve_address(self) -> tuple[str, socket.socket]: ...

    def restart(self, sock: socket.socket | None = None) -> str: ...


def port_of(url: str) -> int:
    return urlsplit(url).port or 80


async def threaded(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking store call in Starlette's thread pool, off the event loop."""
    return await run_in_threadpool(fn, *args)


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
    raw = await read_limited(request.stream(), request.headers.get("content-length"), MAX_BODY, too_large)
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
