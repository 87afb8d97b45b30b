"""The proxy's HTTP surface (ASGI): routes, local access control, reading the body once, and the
mapping of bad input to clear errors. Routing and failover live in :mod:`tray.proxy.pipeline`.

| route | what |
| --- | --- |
| ``POST /backend-api/codex/responses`` (+ ``/compact``) | Codex CLI passthrough |
| ``GET /backend-api/codex/models`` | passthrough with the best account |
| ``POST /v1/responses`` | OpenAI-SDK / opencode: body shaped for the Codex backend |
| ``POST /v1/chat/completions`` | Chat Completions clients: translated to a Responses request and back |
| ``GET /v1/models`` | the upstream model list in OpenAI's list shape |
| ``GET /healthz`` | liveness, no key (the Host/Origin checks apply, as everywhere) |
| WebSocket upgrade on the responses routes | the Responses WebSocket (:mod:`tray.proxy.sockets`) |
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from tray.errors import PoolError, StoreLockedError
from tray.models import Config
from tray.proxy import chatrequest, contentcoding
from tray.proxy.access import AccessPolicy, Denied, check_headers, check_request
from tray.proxy.body import (
    Encoder,
    NotAnObject,
    is_blank,
    parse_object,
    read_fields,
    read_limited,
    routing_fields,
    sealed_blobs,
    sealed_in,
)
from tray.proxy.egress import from_settings
from tray.proxy.owners import digest
from tray.proxy.pipeline import Pipeline
from tray.proxy.relay import Hangup
from tray.proxy.request import Incoming
from tray.proxy.shaping import DEFAULT_ORIGINATOR, TURN_STATE, error_body, shape_v1_body
from tray.proxy.sockets import PATHS as SOCKET_PATHS
from tray.proxy.sockets import SocketRoute

log = logging.getLogger(__name__)
T = TypeVar("T")

# Codex's model list is gated on the client version; /v1 clients do not send one.
MODELS_CLIENT_VERSION = "0.169.0"
INLINE_DECODE = 256 * 1024  # compressed bodies larger than this are decoded in a worker thread


class BadInput(PoolError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def _read(text: bytes, read: Callable[[bytes], T]) -> T:
    """``read(text)``, what it refuses answered 400."""
    try:
        return read(text)
    except NotAnObject as exc:
        raise BadInput(400, "invalid_json", str(exc)) from exc
    except ValueError as exc:
        raise BadInput(400, "invalid_json", f"The request body is not valid JSON: {exc}") from exc


def _denied(denied: Denied) -> Response:
    return _json(denied.status, error_body(denied.message, denied.code, "invalid_request_error"))


async def decoded(body: bytes, applied: list[str], limit: int) -> bytes:
    """``body`` with the client's content codings undone (the body limit applies to the decoded
    size); a large body is decoded off the event loop. The caller keeps the encoded bytes to forward."""
    if not applied or not body:
        return body
    if len(body) <= INLINE_DECODE:
        return contentcoding.decode(body, applied, limit)
    return await asyncio.to_thread(contentcoding.decode, body, applied, limit)


class ProxyRoutes:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        api_key: str,
        policy: Callable[[], AccessPolicy],
        config: Config,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.pipeline = pipeline
        self.environ = environ  # the proxy variables (HTTPS_PROXY...), for the WebSocket route
        self.api_key = api_key
        self.policy = policy  # read per request: the port is known once the server is bound
        self.max_body = config.max_body_bytes
        self.upstream_proxy = config.upstream_proxy  # the WebSocket route dials through it too

    def configure(self, config: Config) -> None:
        """Take a (re)loaded config: ``max-body-mb`` applies to the next request."""
        self.max_body = config.max_body_bytes

    async def healthz(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _json(405, error_body(f"{request.method} is not allowed here.", "method_not_allowed"))
        return _json(200, {"status": "ok"})

    async def responses(self, request: Request) -> Response:
        return await self._guarded(request, self._responses)

    async def models(self, request: Request) -> Response:
        return await self._guarded(request, self._models)

    async def chat(self, request: Request) -> Response:
        return await self._guarded(request, self._chat)

    async def _guarded(self, request: Request, handler: Callable[[Request], Any]) -> Response:
        denied = check_request(self.policy(), request.headers, self.api_key)
        if denied is not None:
            return _denied(denied)
        if request.headers.get("upgrade", "").lower() == "websocket":
            # Reached only on a server without WebSocket support (sockets are their own ASGI scope).
            message = "codex-pool speaks HTTP streaming only here; use the HTTP responses endpoint."
            return _json(426, error_body(message, "websocket_not_supported"), {"Upgrade": "HTTP/1.1"})
        if request.method != ("GET" if handler == self._models else "POST"):
            return _json(405, error_body(f"{request.method} is not allowed here.", "method_not_allowed"))
        try:
            response: Response = await handler(request)
            return response
        except (BadInput, contentcoding.CodingError) as exc:
            return _json(exc.status, error_body(str(exc), exc.code, "invalid_request_error"))
        except ClientDisconnect:
            return Response(status_code=499)

    async def _body(self, request: Request) -> tuple[bytes, bytes]:
        """The body as the client sent it (up to the ``max-body-mb`` limit, 413) and its JSON text:
        the same bytes, or decoded when the client compressed them."""
        limit = self.max_body
        megabytes = limit / (1024 * 1024)
        too_big = BadInput(413, "body_too_large", f"The request body is larger than the {megabytes:g} MB"
                           " limit (max-body-mb in config.toml).")
        applied = contentcoding.codings(request.headers.get("content-encoding"))  # 415 before reading
        body = await read_limited(request.stream(), request.headers.get("content-length"), limit, too_big)
        return body, await decoded(body, applied, limit)

    def _incoming(self, request: Request, route: str, path: str, body: bytes, fields: dict[str, Any] | None,
                  drop: frozenset[str] = frozenset(), **extra: Any) -> Incoming:
        raw = request.scope["headers"]
        headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw)
        if drop:
            headers = tuple(h for h in headers if h[0] not in drop)
        return Incoming(route=route, method=request.method, path=path, query=request.url.query,
                        headers=headers, body=body, fields=fields, turn_state=request.headers.get(TURN_STATE),
                        **extra)

    async def _responses(self, request: Request) -> Response:
        body, text = await self._body(request)
        path = request.url.path
        if path.startswith("/v1/"):
            obj, encode = _read(text, parse_object)
            inc = self._v1(request, "v1.responses", obj, encode)
        else:
            route = "compact" if path.endswith("/compact") else "responses"
            # Forwarded as the client's own bytes: only the fields routing needs are read.
            fields = None if is_blank(text) else _read(text, read_fields)
            inc = self._incoming(request, route, path.removeprefix("/backend-api"), body, fields,
                                 text=None if text is body else text,
                                 sealed=tuple(map(digest, sealed_blobs(text))) if fields is not None else ())
        return await self._handle(request, inc)

    async def _chat(self, request: Request) -> Response:
        _, text = await self._body(request)
        obj, encode = _read(text, parse_object)
        try:
            translated, dropped, options = chatrequest.responses_body(obj)
        except chatrequest.ChatRequestError as exc:
            raise BadInput(400, "invalid_request", str(exc)) from exc
        return await self._handle(request, self._v1(request, "v1.chat", translated, encode, dropped, options))

    def _v1(self, request: Request, route: str, obj: dict[str, Any], encode: Encoder,
            dropped: Sequence[str] = (), chat: chatrequest.ChatOptions | None = None) -> Incoming:
        """A ``/v1`` request shaped for the Codex backend (the body rebuilt once, as plain JSON)."""
        shaped, refused, wants_stream = shape_v1_body(obj)
        if dropped or refused:
            log.info("%s: dropped parameters the Codex backend does not take: %s", request.url.path,
                     ", ".join([*dropped, *refused]))
        body = encode(shaped)
        # The upstream answer is always a stream now, whatever the client accepts.
        return self._incoming(request, route, "/codex/responses", body, routing_fields(shaped),
                              drop=frozenset({"accept", "content-encoding"}),
                              mode="stream" if wants_stream else "aggregate",
                              defaults=(("originator", DEFAULT_ORIGINATOR), ("accept", "text/event-stream")),
                              chat=chat, sealed=tuple(map(digest, sealed_in(shaped))))

    async def _handle(self, request: Request, inc: Incoming) -> Response:
        """Route ``inc``, watching for the client leaving until the answer is ready to send."""
        hangup = Hangup(request.receive)
        try:
            return await self.pipeline.handle(inc, hangup)
        finally:
            hangup.close()

    async def _models(self, request: Request) -> Response:
        if request.url.path.startswith("/v1/"):
            inc = self._incoming(request, "v1.models", "/codex/models", b"", None, mode="models")
            inc = replace(inc, query=inc.query or f"client_version={MODELS_CLIENT_VERSION}")
        else:
            inc = self._incoming(request, "models", "/codex/models", b"", None)
        return await self._handle(request, inc)


class OriginGuard:
    """Host/Origin checks (no key) in front of the UI's static files."""

    def __init__(self, app: ASGIApp, policy: Callable[[], AccessPolicy]) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            denied = check_headers(self.policy(), scope["headers"])
            if denied is not None:
                await _denied(denied)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = f"No such route: {request.method} {request.url.path}"
    return _json(status, error_body(message, "not_found" if status == 404 else "method_not_allowed",
                                    "invalid_request_error"))


async def _server_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreLockedError):
        # Another process holds the pool file's write lock past the busy timeout: not our bug, and
        # retrying shortly works, so say so instead of answering 500.
        log.warning("proxy request on %s: %s", request.url.path, exc)
        return _json(503, error_body(str(exc), "pool_busy"), {"Retry-After": "2"})
    if isinstance(exc, PoolError):
        log.error("proxy error on %s: %s", request.url.path, exc)
    else:
        log.error("proxy error on %s: %s", request.url.path, type(exc).__name__, exc_info=exc)
    message = str(exc) if isinstance(exc, PoolError) else "codex-pool hit an internal error."
    return _json(500, error_body(message, "internal_error"))


class ProxyApp:
    """The whole ASGI app. The proxy routes are dispatched directly (no middleware wrapping every
    streamed chunk); everything else (management API, UI, 404s) goes to a Starlette app.

    Every request first passes the Host/Origin checks, before any route, redirect (``/ui`` to
    ``/ui/`` names the Host it was given) or 404 can answer a page on another origin."""

    def __init__(self, routes: ProxyRoutes, rest: ASGIApp) -> None:
        self.rest = rest
        self.policy = routes.policy
        self.sockets = SocketRoute(routes.pipeline, api_key=lambda: routes.api_key, policy=routes.policy,
                                   max_body=lambda: routes.max_body,
                                   egress=lambda: from_settings(routes.environ, routes.upstream_proxy))
        self.table: dict[str, Callable[[Request], Any]] = {
            "/healthz": routes.healthz,
            "/backend-api/codex/responses": routes.responses,
            "/backend-api/codex/responses/compact": routes.responses,
            "/backend-api/codex/models": routes.models,
            "/v1/responses": routes.responses,
            "/v1/chat/completions": routes.chat,
            "/v1/models": routes.models,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            denied = check_headers(self.policy(), scope["headers"])
            if denied is not None:
                await _denied(denied)(scope, receive, send)
                return
        if scope["type"] == "websocket" and scope["path"] in SOCKET_PATHS:
            await self.sockets(scope, receive, send)
            return
        handler = self.table.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self.rest(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response: Response = await handler(request)
        except Exception as exc:
            response = await _server_error(request, exc)
        await response(scope, receive, send)


def build_app(routes: ProxyRoutes, extra: Sequence[BaseRoute] = ()) -> ProxyApp:
    """The proxy routes, then ``extra`` (management API, UI)."""
    rest = Starlette(
        routes=list(extra),
        exception_handlers={404: _not_found, 405: _not_found, 500: _server_error, PoolError: _server_error},
    )
    return ProxyApp(routes, rest)
