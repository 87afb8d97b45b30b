"""The fake backend's Responses WebSocket (tests only): ``GET /backend-api/codex/responses`` upgraded.

It behaves like chatgpt.com's endpoint as Codex CLI meets it (openai/codex
``codex-api/src/endpoint/responses_websocket.rs``):

- the upgrade needs ``Authorization: Bearer <token>`` of a registered account (else a 401 answer
  instead of the 101); ``FakeUpstream.script_handshake`` queues refusals (a usage-limit 429, 401,
  5xx, an HTML 403) for an account's next upgrades;
- the 101 carries ``x-codex-turn-state`` (when ``WsKnobs.turn_state`` is set), ``openai-model``,
  ``x-models-etag``, ``x-reasoning-included`` and ``x-fake-account``, but no ``x-codex-*`` quota
  headers: on a WebSocket the quota comes as a ``codex.rate_limits`` message before each answer;
- each text message ``{"type": "response.create", ...}`` gets the account's next reply (the same
  script as HTTP) as one JSON text message per event; errors come in-band as
  ``{"type": "error", "status": 429, "error": {...}, "headers": {...}}``;
- ``previous_response_id`` is only known on the connection that produced it (``store: false``):
  any other id is answered ``previous_response_not_found``. Encrypted content this account did
  not make (another account's, or made up) is refused (``invalid_encrypted_content``). Both are
  counted in ``outcomes`` as ``foreign_previous_response`` / ``foreign_reasoning``, so a test can
  prove the proxy never mixes accounts;
- a connection-age limit (``WsKnobs.max_requests`` answers per connection) answers the next request
  ``websocket_connection_limit_reached`` and closes, as the backend does after 60 minutes;
- the server pings every ``ping_interval`` seconds (uvicorn's keep-alive, see ``runner.py``), and
  the events of one answer go out back to back, several to one TCP segment.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes import upstream_requests as checks
from tests.fakes import upstream_wire as wire
from tests.fakes.replies import Reply

if TYPE_CHECKING:
    from tests.fakes.upstream import FakeAccount, FakeUpstream

LIMIT_MESSAGE = ("Responses websocket connection limit reached (60 minutes). Create a new websocket "
                 "connection to continue.")


@dataclass
class WsKnobs:
    """Switches of the WebSocket endpoint; counters the tests read."""

    max_requests: int | None = None  # answers per connection before the connection-age limit
    turn_state: str | None = None  # x-codex-turn-state in every 101
    model: str = "gpt-5.5"  # openai-model in every 101
    opened: int = 0  # connections accepted
    open_now: int = 0
    refused: int = 0  # upgrades answered with an error status
    closed_by_client: int = 0
    sent: int = 0  # answer events sent, all connections
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, step: int = 1) -> int:
        with self._lock:
            value: int = getattr(self, name) + step
            setattr(self, name, value)
            return value


@dataclass
class Owners:
    """Which account made each response id and each encrypted reasoning blob (process-wide)."""

    responses: dict[str, str] = field(default_factory=dict)
    reasoning: dict[str, str] = field(default_factory=dict)


def _refusal(fake: FakeUpstream, account: FakeAccount, reply: Reply) -> Response:
    now = fake.clock()
    if reply.kind == "html":
        return HTMLResponse(wire.CLOUDFLARE_HTML, status_code=reply.status, headers={"server": "cloudflare"})
    if reply.error_type == "usage_limit_reached":
        usage = wire.exhausted(wire.live_usage(account.usage, now), reply.resets_in, now)
        if reply.exhaust:
            account.usage = usage
        body = wire.usage_limit_body(account.plan_type, reply.resets_in, now)
        return JSONResponse(body, status_code=429, headers=wire.rate_limit_headers(usage))
    if reply.status == 401:
        return JSONResponse(wire.unauthorized_body(reply.error_type or "token_expired"), status_code=401)
    return JSONResponse(reply.body or {"error": {"message": "error", "type": "server_error"}},
                        status_code=reply.status)


async def responses_socket(websocket: WebSocket, fake: FakeUpstream) -> None:
    """One client connection, from the upgrade to its close."""
    headers = {k.lower(): v for k, v in websocket.headers.items()}
    auth = headers.get("authorization", "")
    account_id, problem = fake.identify(auth[7:] if auth.lower().startswith("bearer ") else None)
    knobs = fake.ws
    if account_id is None:
        fake.record("GET", websocket.url.path, websocket.url.query, headers, None)
        knobs.count("refused")
        fake.note("401")
        await websocket.send_denial_response(
            JSONResponse(wire.unauthorized_body(problem or "token_invalidated"), status_code=401))
        return
    account = fake.accounts[account_id]
    claimed = headers.get("chatgpt-account-id")
    scripted = fake.next_handshake_reply(account_id)
    if claimed is not None and claimed != account_id:
        knobs.count("refused")
        fake.note("403_account_mismatch")
        await websocket.send_denial_response(JSONResponse({"detail": "account mismatch"}, status_code=403))
        return
    if scripted is not None:
        knobs.count("refused")
        fake.note(f"handshake_{scripted.status}")
        await websocket.send_denial_response(_refusal(fake, account, scripted))
        return
    socket = knobs.count("opened")
    answer = [(b"x-fake-account", account_id.encode()), (b"openai-model", knobs.model.encode()),
              (b"x-models-etag", b"fake-etag-1"), (b"x-reasoning-included", b"true"),
              (b"x-request-id", f"req_ws_{socket}".encode())]
    if knobs.turn_state is not None:
        answer.append((b"x-codex-turn-state", knobs.turn_state.encode()))
    await websocket.accept(headers=answer)
    knobs.count("open_now")
    mine: set[str] = set()
    answered = 0
    try:
        while True:
            try:
                text = await websocket.receive_text()
            except WebSocketDisconnect:
                knobs.count("closed_by_client")
                return
            try:
                message: Any = json.loads(text)
            except ValueError:
                await websocket.send_json({"type": "error", "status": 400,
                                           "error": {"type": "invalid_request_error", "message": "bad JSON"}})
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            fake.record("WS", websocket.url.path, websocket.url.query, headers, message, raw=text.encode(),
                        socket=socket)
            if kind == "response.processed":
                continue
            if kind != "response.create":
                await websocket.send_json({"type": "error", "status": 400, "error": {
                    "type": "invalid_request_error", "message": f"unknown message type {kind!r}"}})
                continue
            if knobs.max_requests is not None and answered >= knobs.max_requests:
                fake.note("ws_connection_limit")
                await websocket.send_json({"type": "error", "status": 400, "error": {
                    "type": "invalid_request_error", "code": "websocket_connection_limit_reached",
                    "message": LIMIT_MESSAGE}})
                await websocket.close(1000)
                return
            answered += 1
            refusal = _continuity(fake, account_id, message, mine)
            if refusal is not None:
                await websocket.send_json(refusal)
                continue
            reply = fake.next_reply(account_id)
            if not await _answer(websocket, fake, account, reply, message, mine):
                return
    finally:
        knobs.count("open_now", -1)


def _continuity(fake: FakeUpstream, account_id: str, message: dict[str, Any], mine: set[str]
                ) -> dict[str, Any] | None:
    """The in-band refusal of a request naming state this connection does not have, else None."""
    previous = message.get("previous_response_id")
    owners: Owners = fake.owners
    if isinstance(previous, str) and previous not in mine:
        if owners.responses.get(previous, account_id) != account_id:
            fake.note("foreign_previous_response")
        fake.note("previous_response_not_found")
        return {"type": "error", "status": 400, "error": {
            "type": "invalid_request_error", "code": "previous_response_not_found",
            "param": "previous_response_id", "message": f"Previous response with id '{previous}' not found."}}
    for item in message.get("input") or []:
        blob = item.get("encrypted_content") if isinstance(item, dict) else None
        if isinstance(blob, str) and owners.reasoning.get(blob) != account_id:  # unknown: unreadable too
            fake.note("foreign_reasoning")
            return {"type": "error", "status": 400, "error": {
                "type": "invalid_request_error", "code": "invalid_encrypted_content",
                "message": "The encrypted content could not be verified."}}
    return None


async def _answer(websocket: WebSocket, fake: FakeUpstream, account: FakeAccount, reply: Reply,
                  message: dict[str, Any], mine: set[str]) -> bool:
    """Send one reply's messages; False once the connection is gone (or was dropped on purpose)."""
    now = fake.clock()
    usage = wire.live_usage(account.usage, now)
    label = {"json": str(reply.status), "html": "html_403"}.get(reply.kind, reply.kind)
    fake.note(label)
    if reply.first_byte_delay:
        await asyncio.sleep(reply.first_byte_delay)
    if reply.kind in ("json", "html", "raw"):
        error: dict[str, Any] = {"type": "error", "status": reply.status}
        if reply.error_type == "usage_limit_reached":
            if reply.exhaust or wire.blocking_reset(usage, now) is None:
                usage = wire.exhausted(usage, reply.resets_in, now)
            if reply.exhaust:
                account.usage = usage
            error["error"] = wire.usage_limit_body(account.plan_type, reply.resets_in, now)["error"]
            error["headers"] = wire.rate_limit_headers(usage)
        elif reply.status == 401:
            error["error"] = wire.unauthorized_body(reply.error_type or "token_expired")["error"]
        elif isinstance(reply.body, dict) and isinstance(reply.body.get("error"), dict):
            error["error"] = reply.body["error"]
        else:
            error["error"] = {"type": "server_error", "message": "An error occurred."}
        if reply.kind == "html":
            error["error"] = {"type": "forbidden", "message": "Just a moment..."}
        await websocket.send_json(error)
        return True
    knobs = fake.ws
    events = build_events(fake, account, reply, message, usage, mine)
    complete = reply.kind != "drop"
    if not complete:
        events = events[: reply.drop_after]
    fake.stream_opened()
    sent_all = False
    try:
        for event in events:
            await websocket.send_text(json.dumps(event, separators=(",", ":")))
            knobs.count("sent")
            if reply.event_delay:
                await asyncio.sleep(reply.event_delay)
        sent_all = True
    except (WebSocketDisconnect, RuntimeError, OSError):
        return False
    finally:
        fake.stream_closed(completed=sent_all and complete, disconnected=not sent_all)
    if not complete:
        await websocket.close(1011)  # the backend went away mid-answer
        return False
    return True


def build_events(fake: FakeUpstream, account: FakeAccount, reply: Reply, message: dict[str, Any],
                 usage: dict[str, Any], mine: set[str]) -> list[dict[str, Any]]:
    """The events of one answer, as the JSON objects that go out one per message."""
    model = str(message.get("model") or "gpt-5.5")
    response_id = fake.next_id()
    mine.add(response_id)
    fake.owners.responses[response_id] = account.account_id
    limits = json.loads(wire.rate_limits_event(usage).split(b"data: ", 1)[1])
    if reply.kind == "stream_error":
        frames = wire.failed_events(reply.error_type or "server_is_overloaded", reply.text or "error",
                                    response_id=response_id, model=model, style=reply.error_style)
        return [limits, *_datas(frames)]
    if message.get("generate") is False:  # a prewarm: the context is taken in, nothing generated
        started = wire.response_object(response_id, model, "in_progress")
        done = {**started, "status": "completed", "usage": {"input_tokens": 12, "output_tokens": 0,
                                                             "total_tokens": 12}}
        return [limits, {"type": "response.created", "response": started},
                {"type": "response.completed", "response": done}]
    if reply.kind == "tool_call":
        frames = checks.function_call_events(reply.tool or "tool", reply.text or "{}",
                                             call_id=f"call_{response_id}", response_id=response_id,
                                             model=model, pieces=reply.deltas)
        return [limits, *_datas(frames)]
    text = reply.text if reply.text is not None else f"Hi from {account.account_id}!"
    pieces = wire.split_text(text, reply.deltas, reply.delta_size)
    if reply.noise:  # what no compression can shrink: the wire carries every byte
        noise = random.Random(response_id)
        pieces = [p[:1] + base64.b64encode(noise.randbytes(len(p))).decode()[: len(p) - 1] for p in pieces]
    frames = wire.response_events(pieces, response_id=response_id, model=model)
    events = _datas(frames)
    blob = f"enc:{account.account_id}:{response_id}"
    fake.owners.reasoning[blob] = account.account_id
    reasoning = {"id": f"rs_{response_id}", "type": "reasoning", "summary": [], "encrypted_content": blob}
    # The reasoning item goes ahead of the message, and into the final output, as the backend sends it.
    events.insert(2, {"type": "response.output_item.done", "output_index": 0, "item": reasoning})
    final = events[-1]["response"]
    final["output"] = [reasoning, *final["output"]]
    return [limits, *events]


def _datas(frames: list[bytes]) -> list[dict[str, Any]]:
    return [data for _, data in wire.parse_sse(b"".join(frames))]
