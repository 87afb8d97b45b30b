"""The Starlette routes of the fake ChatGPT backend; state and knobs live in ``upstream.py``."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zstandard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from tests.fakes import replies
from tests.fakes import upstream_requests as checks
from tests.fakes import upstream_wire as wire
from tests.fakes.replies import Reply
from tests.fakes.upstream_ws import responses_socket

if TYPE_CHECKING:
    from tests.fakes.upstream import FakeAccount, FakeUpstream


@dataclass
class UsageKnobs:
    """Switches for every ``wham/usage`` call, after the per-account script (an outage of the usage
    API as a whole). Each call waits ``delay`` seconds (re-read while it waits: lowering it lets the
    waiting calls go), then answers HTTP ``status`` with upstream's error body, or the account's
    payload when ``status`` is 0. ``waiting`` and ``answered`` count the calls; a client that hung up
    while its call waited is still counted as answered when the wait ends."""

    delay: float = 0.0
    status: int = 0
    waiting: int = 0
    answered: int = 0


def usage_knobs(fake: FakeUpstream) -> UsageKnobs:
    """The usage route's knobs of this fake (one set per fake)."""
    knobs: UsageKnobs = fake.routes.state.usage_knobs
    return knobs


class SSEStream(Response):
    """Sends an SSE answer's chunks (see ``FakeUpstream.chunks``) one send at a time; stops early when
    the client goes away, and with ``complete=False`` ends by closing the connection with no final
    chunk (a mid-stream drop)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        fake: FakeUpstream,
        chunks: list[bytes],
        headers: dict[str, str],
        *,
        delay: float,
        complete: bool,
    ) -> None:
        super().__init__(content=None, status_code=200, headers=headers)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # chunked
        self.fake, self.chunks, self.delay, self.complete = fake, chunks, delay, complete

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        self.fake.stream_opened()
        sent_all = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            for chunk in self.chunks:
                if gone.is_set():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                # Always yield to the loop, even with no delay: otherwise a client that went away is
                # only noticed after the whole answer was written into a dead socket.
                await asyncio.sleep(self.delay)
            else:
                sent_all = not gone.is_set()
            if sent_all and self.complete:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            # A drop returns without the final chunk: uvicorn then closes the connection, so the
            # client sees an incomplete chunked body, as when upstream's connection breaks.
        finally:
            watcher.cancel()
            self.fake.stream_closed(completed=sent_all and self.complete, disconnected=gone.is_set())


def _headers(
    fake: FakeUpstream, account: FakeAccount | None, reply: Reply, usage: dict[str, Any]
) -> dict[str, str]:
    headers = {"x-request-id": fake.next_id().replace("resp_", "req_")}
    if account is not None:
        headers["x-fake-account"] = account.account_id
        if reply.usage_headers:
            headers.update(wire.rate_limit_headers(usage))
    if reply.turn_state is not None:
        headers["x-codex-turn-state"] = reply.turn_state
    headers.update(dict(reply.headers))
    return headers


def _error_body(reply: Reply, account: FakeAccount | None, now: float) -> Any:
    plan = account.plan_type if account is not None else "plus"
    if reply.error_type == "usage_limit_reached":
        return wire.usage_limit_body(plan, reply.resets_in, now)
    if reply.error_type == "usage_not_included":
        return wire.usage_not_included_body(plan)
    if reply.status == 401:
        return wire.unauthorized_body(reply.error_type or "token_expired")
    return reply.body


def answer(
    fake: FakeUpstream, account: FakeAccount | None, reply: Reply, body: Any, *, compact: bool = False
) -> Response:
    """Carry out ``reply`` for one request to the responses routes (or the usage route)."""
    now = fake.clock()
    usage = wire.live_usage(account.usage, now) if account is not None else {}
    if account is not None and reply.error_type == "usage_limit_reached":
        if reply.exhaust or wire.blocking_reset(usage, now) is None:
            usage = wire.exhausted(usage, reply.resets_in, now)
        if reply.exhaust:
            account.usage = usage
    headers = _headers(fake, account, reply, usage)
    label = {"json": str(reply.status), "html": "html_403"}.get(reply.kind, reply.kind)
    fake.note(label)
    if reply.kind == "json":
        return JSONResponse(_error_body(reply, account, now), status_code=reply.status, headers=headers)
    if reply.kind == "raw":
        return Response(reply.body, status_code=reply.status, headers=headers)
    if reply.kind == "html":
        headers.update({"server": "cloudflare", "cf-ray": "8f0000000000fake-AMS"})
        return HTMLResponse(wire.CLOUDFLARE_HTML, status_code=reply.status, headers=headers)
    request = body if isinstance(body, dict) else {}
    model = str(request.get("model") or "gpt-5.5")
    response_id = fake.next_id()
    if reply.kind == "stream_error":
        frames = wire.failed_events(
            reply.error_type or "server_is_overloaded",
            reply.text or "error",
            response_id=response_id,
            model=model,
            style=reply.error_style,
        )
        return SSEStream(fake, fake.chunks(frames), headers, delay=reply.event_delay, complete=True)
    reasoning = None
    if account is not None and "reasoning.encrypted_content" in (request.get("include") or []):
        blob = f"enc:{account.account_id}:{response_id}"  # only this account can read it back
        fake.owners.reasoning[blob] = account.account_id
        reasoning = wire.reasoning_item(response_id, blob)
    if reply.kind == "tool_call":
        frames = checks.function_call_events(reply.tool or "tool", reply.text or "{}",
                                             call_id=f"call_{response_id}", response_id=response_id,
                                             model=model, pieces=reply.deltas, reasoning=reasoning)
        return SSEStream(fake, fake.chunks(frames), headers, delay=reply.event_delay, complete=True)
    text = reply.text if reply.text is not None else f"Hi from {account.account_id if account else '?'}!"
    schema = checks.json_format(request)
    if schema is not None and reply.text is None:
        text = checks.schema_text(schema["schema"], text)  # structured outputs: the answer fits the schema
    pieces = wire.split_text(text, reply.deltas, reply.delta_size)
    tier = request.get("service_tier")
    frames = wire.response_events(
        pieces, response_id=response_id, model=model, service_tier=tier if isinstance(tier, str) else None,
        reasoning=reasoning,
    )
    if compact and reply.kind == "ok" and account is not None:
        # The compacted history: the summary as an encrypted compaction item only this account reads.
        blob = f"enc:{account.account_id}:cmp_{response_id}"
        fake.owners.reasoning[blob] = account.account_id
        item = {"id": f"cmp_{response_id}", "type": "compaction", "encrypted_content": blob}
        return JSONResponse({"output": [item]}, headers=headers)
    if reply.rate_limits_event and account is not None:
        frames.insert(0, wire.rate_limits_event(usage))
    if reply.preamble:
        frames.insert(0, reply.preamble)
    if reply.kind == "drop":
        chunks = fake.chunks(frames[: reply.drop_after])
        return SSEStream(fake, chunks, headers, delay=reply.event_delay, complete=False)
    return SSEStream(fake, fake.chunks(frames), headers, delay=reply.event_delay, complete=True)


async def _read(request: Request, fake: FakeUpstream) -> tuple[Any, str | None, str | None]:
    """Record the request; return its JSON body, the account id and the 401 code (if any)."""
    raw = await request.body()
    body: Any = None
    text = _unpacked(raw, request.headers.get("content-encoding", ""))
    if text:
        try:
            body = json.loads(text)
        except ValueError:
            body = text.decode(errors="replace")  # answered 400 like any body that is not JSON
    headers = {k.lower(): v for k, v in request.headers.items()}
    fake.record(request.method, request.url.path, request.url.query, headers, body, raw=raw)
    auth = headers.get("authorization", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else None
    account_id, problem = fake.identify(token)
    return body, account_id, problem


def _unpacked(raw: bytes, coding: str) -> bytes:
    """The body with its Content-Encoding undone, as the backend does for Codex's zstd bodies; a body
    that does not decode (or a coding the backend does not know) comes back as it was, so it fails
    as JSON."""
    data = raw
    for name in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
        try:
            if name == "zstd":
                unpacker = zstandard.ZstdDecompressor().decompressobj()
                data = unpacker.decompress(data)
                if not unpacker.eof:
                    return raw
            elif name in ("gzip", "x-gzip"):
                data = gzip.decompress(data)
            elif name == "deflate":
                data = zlib.decompress(data)
            elif name != "identity":
                return raw
        except (zstandard.ZstdError, OSError, EOFError, zlib.error):
            return raw
    return data


def _check(
    fake: FakeUpstream, request: Request, account_id: str | None, problem: str | None
) -> Response | None:
    if account_id is None:
        fake.note("401")
        return JSONResponse(wire.unauthorized_body(problem or "token_invalidated"), status_code=401)
    claimed = request.headers.get("chatgpt-account-id")
    if claimed is not None and claimed != account_id:
        fake.note("403_account_mismatch")
        detail = "chatgpt-account-id does not match the access token's account (fake upstream check)"
        return JSONResponse({"detail": detail}, status_code=403)
    return None


def _unreadable(fake: FakeUpstream, account_id: str, body: Any) -> Response | None:
    """The backend's refusal of encrypted content this account did not make (another account's
    reasoning or compaction, or a blob nobody here made): it cannot decrypt it. Counted as
    ``foreign_reasoning`` so a test can prove the proxy never sends one account's to another."""
    items = body.get("input") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else []:
        blob = item.get("encrypted_content") if isinstance(item, dict) else None
        if isinstance(blob, str) and fake.owners.reasoning.get(blob) != account_id:
            fake.note("foreign_reasoning")
            error = {"message": f"The encrypted content {blob[:4]}...{blob[-4:]} could not be verified.",
                     "type": "invalid_request_error", "param": None, "code": "invalid_encrypted_content"}
            return JSONResponse({"error": error}, 400)
    return None


async def _held(request: Request, gate: threading.Event) -> bool:
    """Wait until ``gate`` is set (True) or the caller hangs up first (False)."""
    while not gate.is_set():
        if await request.is_disconnected():
            return False
        await asyncio.sleep(0.01)
    return True


def build_app(fake: FakeUpstream) -> Starlette:
    async def responses(request: Request) -> Response:
        body, account_id, problem = await _read(request, fake)
        refused = _check(fake, request, account_id, problem)
        if refused is not None:
            return refused
        if body is not None and not isinstance(body, dict):
            return JSONResponse(
                {"error": {"message": "Invalid JSON body", "type": "invalid_request_error"}}, 400
            )
        wrong = checks.problem(body) if isinstance(body, dict) else None
        if wrong is not None:
            fake.note("400")
            error = {"message": wrong, "type": "invalid_request_error", "param": None, "code": None}
            return JSONResponse({"error": error}, 400)
        assert account_id is not None
        unreadable = _unreadable(fake, account_id, body)
        if unreadable is not None:
            return unreadable
        account = fake.accounts[account_id]
        reply = fake.next_reply(account_id)
        if reply.hold is not None and not await _held(request, reply.hold):
            fake.hung_up()
            return Response(status_code=499)  # nobody is listening any more
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        compact = request.url.path.endswith("/compact")
        return answer(fake, account, reply, body, compact=compact)

    knobs = UsageKnobs()

    async def usage(request: Request) -> Response:
        _, account_id, problem = await _read(request, fake)
        refused = _check(fake, request, account_id, problem)
        if refused is not None:
            return refused
        assert account_id is not None
        account = fake.accounts[account_id]
        reply = fake.next_usage_reply(account_id)
        if reply is not None and reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply is not None and reply.kind != "ok":
            return answer(fake, account, reply, None)
        knobs.waiting += 1
        started = time.monotonic()
        try:
            while time.monotonic() - started < knobs.delay:
                await asyncio.sleep(min(0.05, knobs.delay))
        finally:
            knobs.waiting -= 1
            knobs.answered += 1
        if knobs.status:
            return answer(fake, account, replies.server_error(knobs.status), None)
        payload = {"account_id": account_id, **wire.live_usage(account.usage, fake.clock())}
        return JSONResponse(payload)

    async def models(request: Request) -> Response:
        _, account_id, problem = await _read(request, fake)
        refused = _check(fake, request, account_id, problem)
        if refused is not None:
            return refused
        assert account_id is not None
        reply = fake.next_models_reply(account_id)
        if reply is not None:
            return answer(fake, fake.accounts[account_id], reply, None)
        return JSONResponse({"models": [_model(slug, n) for n, slug in enumerate(fake.models)]})

    async def unknown(request: Request) -> Response:
        await _read(request, fake)
        return JSONResponse({"detail": "Not Found"}, status_code=404)

    async def socket(websocket: WebSocket) -> None:
        await responses_socket(websocket, fake)

    app = Starlette(
        routes=[
            WebSocketRoute("/backend-api/codex/responses", socket),
            Route("/backend-api/codex/responses", responses, methods=["POST"]),
            Route("/backend-api/codex/responses/compact", responses, methods=["POST"]),
            Route("/backend-api/wham/usage", usage, methods=["GET"]),
            Route("/backend-api/codex/models", models, methods=["GET"]),
            Route("/{path:path}", unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
    )
    app.state.usage_knobs = knobs
    return app


def _model(slug: str, priority: int) -> dict[str, Any]:
    """One entry shaped like Codex's ``ModelInfo`` (the fields Codex CLI reads)."""
    efforts = [{"effort": e, "description": f"{e} reasoning"} for e in ("low", "medium", "high")]
    return {
        "slug": slug,
        "display_name": slug.upper(),
        "description": f"Fake {slug}",
        "default_reasoning_level": "medium",
        "supported_reasoning_levels": efforts,
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": True,
        "priority": priority,
        "context_window": 272000,
    }
