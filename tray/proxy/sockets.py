"""The Responses WebSocket route: ``GET /backend-api/codex/responses`` (and ``/v1/responses``)
upgraded, as Codex CLI opens it when its provider has ``supports_websockets = true``.

The upgrade passes the same checks as an HTTP request (local key, ``Host``, ``Origin``), then an
account's upstream socket is opened (the plan, failover at the upgrade: 401 → refresh, 429 →
cooldown and the next account). Only then is the client's upgrade answered: with the backend's 101
headers that Codex reads (``x-codex-turn-state``, ``openai-model``, ``x-models-etag``,
``x-reasoning-included``), or with the refusal the client should see (the pooled 429 with
``Retry-After`` when every account is limited). :class:`~tray.proxy.bridge.Bridge` does the rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tray.errors import PoolError
from tray.proxy.access import AccessPolicy, check_headers, check_request
from tray.proxy.bridge import Bridge, Hop
from tray.proxy.dialer import Refused
from tray.proxy.egress import Egress
from tray.proxy.pipeline import Pipeline
from tray.proxy.request import Incoming
from tray.proxy.shaping import DEFAULT_ORIGINATOR, TURN_STATE, error_body
from tray.proxy.sides import ClientSide
from tray.proxy.upgrade import connect

log = logging.getLogger(__name__)

PATHS = frozenset({"/backend-api/codex/responses", "/v1/responses"})


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json", headers=headers)


class SocketRoute:
    """ASGI app for the WebSocket scope of the responses routes; one per engine."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        api_key: Callable[[], str],
        policy: Callable[[], AccessPolicy],
        max_body: Callable[[], int],
        egress: Callable[[], Egress] = Egress,
    ) -> None:
        self.pipeline = pipeline
        self.api_key = api_key
        self.policy = policy
        self.max_body = max_body
        self.egress = egress  # upstream-proxy / HTTPS_PROXY..., as for the HTTP client
        self.owners = pipeline.crew.owners  # whose encrypted items are whose: across sockets and HTTP

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        denied = check_headers(self.policy(), scope["headers"]) or check_request(
            self.policy(), headers, self.api_key())
        if denied is not None:
            body = error_body(denied.message, denied.code, "invalid_request_error")
            await _json(denied.status, body)(scope, receive, send)
            return
        connected = await receive()  # the ASGI "websocket.connect"
        if connected["type"] != "websocket.connect":
            return
        inc = self._incoming(scope, headers)
        upstream_url = urlsplit(self.pipeline.crew.upstream_url)
        proxy = self.egress().proxy_for(upstream_url.scheme, upstream_url.hostname or "", upstream_url.port)
        opened = await connect(self.pipeline, inc, set(), [], proxy)
        if isinstance(opened, Refused):
            log.info("%s: upstream refused the upgrade with %d; passing it on", inc.route, opened.status)
            refusal = Response(opened.body, status_code=opened.status, headers=opened.headers)
            await refusal(scope, receive, send)
            return
        if isinstance(opened, Response):
            await opened(scope, receive, send)
            return
        attempt, upstream = opened
        answer = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream.headers]
        try:
            await send({"type": "websocket.accept", "headers": answer})
        except OSError:  # the client left while its account's socket was being opened
            await upstream.close()
            return
        log.debug("%s: socket open on %s", inc.route, attempt.account.name)
        client = ClientSide(receive, send)
        hop = Hop(attempt, upstream)
        bridge = Bridge(self.pipeline, client, inc, hop, self.owners, self.max_body(), proxy)
        try:
            await bridge.run()
        except PoolError as exc:
            log.error("%s: the socket ended on an error: %s", inc.route, exc)
        except Exception as exc:  # both sides are closed by now; a bug, so with its traceback
            log.error("%s: the socket ended on an error (%s)", inc.route, type(exc).__name__, exc_info=exc)

    def _incoming(self, scope: Scope, headers: Headers) -> Incoming:
        raw = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])
        v1 = scope["path"].startswith("/v1/")
        return Incoming(
            route="v1.responses.ws" if v1 else "responses.ws",
            method="GET",
            path="/codex/responses",
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=raw,
            body=b"",
            fields=None,
            defaults=(("originator", DEFAULT_ORIGINATOR),) if v1 else (),
            turn_state=headers.get(TURN_STATE),
        )
