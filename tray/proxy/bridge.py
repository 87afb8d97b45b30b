"""One client WebSocket bridged to one account's upstream WebSocket at a time.

The account is chosen when the client's socket opens (the upgrade carries the session headers the
affinity needs) and kept: ``previous_response_id`` and encrypted reasoning belong to the account,
and even to the connection, that made them. Each ``response.create`` goes upstream (turn state and
another account's reasoning taken out, fast mode decided) and its events come back one message
each. Until an answer's first output its events are held back, so an in-band 429, an overload or
a socket that closes can still move the request to the next account, as on HTTP. A request that
names a ``previous_response_id`` cannot move: it is answered ``previous_response_not_found``, and
Codex CLI sends its whole context again on a new socket (which gets an account of its own).

Both sides close together; the backend's connection-age limit reaches the client as the backend
sent it. One message is in flight each way, so a slow reader slows the other side down. Each
``response.create`` is a decision in the activity view.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from starlette.responses import Response
from websockets.exceptions import ConnectionClosed

from tray.proxy import frames
from tray.proxy.body import routing_fields
from tray.proxy.dialer import Refused, Upstream
from tray.proxy.owners import ReasoningOwners, digest
from tray.proxy.pipeline import CLIENT_GONE, STREAM_DROPPED, Pipeline
from tray.proxy.pooled import Failure
from tray.proxy.request import Incoming
from tray.proxy.shaping import TURN_STATE, shape_v1_body
from tray.proxy.sides import ClientGone, ClientSide, Reads
from tray.proxy.upgrade import Upgrade, connect, record

log = logging.getLogger(__name__)

HOLD_LIMIT = 8 * 1024 * 1024  # bytes of events held back before an answer's first output
ABNORMAL = 1011  # sent for an upstream close whose own code may not be sent again (1005, 1006...)


@dataclass
class Hop:
    """The upstream socket in use: its account's attempt and the response ids made on it."""

    attempt: Upgrade
    upstream: Upstream
    made: set[str] = field(default_factory=set)
    reason: str = ""  # why this account: the plan's reason for the first request, then the socket's
    reads: Reads[str | bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.reads = Reads(self.upstream.conn.recv)
        self.reason = self.reason or self.attempt.reason

    async def close(self) -> None:
        self.reads.cancel()
        await self.upstream.close()


async def _first(*futures: asyncio.Future[Any]) -> None:
    """Wait until one of ``futures`` is done (none is cancelled)."""
    await asyncio.wait(set(futures), return_when=asyncio.FIRST_COMPLETED)


def _text(message: str | bytes) -> str:
    return message if isinstance(message, str) else message.decode("utf-8", "replace")


class Bridge:
    """Serves one accepted client socket until either side closes it."""

    def __init__(self, pipeline: Pipeline, client: ClientSide, inc: Incoming, hop: Hop,
                 owners: ReasoningOwners, max_body: int, proxy: str | None = None) -> None:
        self.pipeline = pipeline
        self.client = client
        self.inc = inc
        self.hop: Hop | None = hop
        self.owners = owners
        self.max_body = max_body
        self.proxy = proxy  # the forward proxy upstream sockets go through (None: direct)

    async def run(self) -> None:
        try:
            while (message := await self._idle()) is not None:
                await self._handle(message)
        except ClientGone:
            log.debug("%s: the client closed its socket", self.inc.route)
        finally:
            self.client.reads.cancel()
            if self.hop is not None:
                await self.hop.close()
            await self.client.close()

    async def _idle(self) -> str | bytes | None:
        """The client's next message, passing on what upstream sends meanwhile (and its close)."""
        while True:
            hop = self.hop
            if hop is None:
                return await self.client.next()
            client, upstream = self.client.reads.future(), hop.reads.future()
            await _first(client, upstream)
            if client.done():
                return await self.client.next()
            try:
                message = hop.reads.take()
            except ConnectionClosed as exc:
                await self.upstream_closed(exc)
                return None
            await self.client.send(_text(message))

    async def upstream_closed(self, exc: ConnectionClosed) -> None:
        code = exc.rcvd.code if exc.rcvd is not None else ABNORMAL
        log.info("%s: upstream closed its socket (%d); closing the client's", self.inc.route, code)
        self.hop = None
        sendable = code in (1000, 1001, 1008, 1011, 1012, 1013) or 3000 <= code < 5000
        await self.client.close(code if sendable else ABNORMAL)

    async def _handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self.client.send(frames.bad_message_error("Send JSON text messages.", "binary_message"))
            return
        if len(message) * 4 > self.max_body and len(message.encode()) > self.max_body:
            megabytes = self.max_body / (1024 * 1024)
            await self.client.send(frames.bad_message_error(
                f"The message is larger than the {megabytes:g} MB limit (max-body-mb in config.toml).",
                "body_too_large", 413))
            return
        request = frames.read_request(message)
        if request is None:
            await self.client.send(frames.bad_message_error("The message must be a JSON object."))
            return
        if not request.creates:
            if self.hop is not None:  # response.processed and the like belong to the socket's account
                try:
                    await self.hop.upstream.conn.send(message)
                except ConnectionClosed as exc:
                    await self.upstream_closed(exc)
            return
        if self.inc.route.startswith("v1."):
            request = _shaped(request)
        await Exchange(self, request).run()


def _shaped(request: frames.Request) -> frames.Request:
    """A ``/v1/responses`` client's message shaped for the Codex backend, as its HTTP bodies are."""
    shaped, dropped, _ = shape_v1_body({k: v for k, v in (request.obj or {}).items() if k != "type"})
    if dropped:
        log.info("/v1/responses socket: dropped parameters the Codex backend does not take: %s",
                 ", ".join(dropped))
    obj = {"type": frames.CREATE, **shaped}
    return frames.Request(json.dumps(obj, separators=(",", ":"), ensure_ascii=False), frames.CREATE, obj)


def _turn_state(request: frames.Request) -> str | None:
    metadata = request.obj.get("client_metadata") if request.obj is not None else None
    value = metadata.get(TURN_STATE) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


class Exchange:
    """One ``response.create`` and its answer, failing over before the first output."""

    def __init__(self, bridge: Bridge, request: frames.Request) -> None:
        self.bridge = bridge
        self.request = request
        fields = routing_fields(request.obj) if request.obj is not None else None
        self.inc = replace(bridge.inc, body=request.text.encode(), fields=fields)
        self.started = time.perf_counter()
        self.failures: list[Failure] = []

    async def run(self) -> None:
        bridge = self.bridge
        previous = self.request.previous_response_id
        if previous is not None and (bridge.hop is None or previous not in bridge.hop.made):
            # Made on another connection (or account): only a full context can be answered here.
            await bridge.client.send(frames.not_found_error(previous))
            return
        tried: set[int] = set()
        while True:
            hop = bridge.hop
            if hop is None:
                opened = await connect(bridge.pipeline, self.inc, tried, self.failures, bridge.proxy)
                if isinstance(opened, Refused):
                    await self._error(opened.status, opened.body, opened.headers)
                    return
                if isinstance(opened, Response):
                    await self._error(opened.status_code, opened.body, dict(opened.headers))
                    return
                bridge.hop = hop = Hop(*opened)
            tried.add(hop.attempt.account.id)
            if await self._try(hop):
                return
            bridge.hop = None
            if previous is not None:
                last = self.failures[-1]
                log.info("%s on %s: the request continues a response made there, so it cannot move;"
                         " asking the client for its whole context", last.label, hop.attempt.account.name)
                record(bridge.pipeline, hop.attempt, last.status or 502, self.started,
                       "previous_response_id cannot move; the client resends its whole context")
                await bridge.client.send(frames.not_found_error(previous))
                return

    async def _error(self, status: int, body: bytes | memoryview, headers: dict[str, str]) -> None:
        """An HTTP error answer (the pooled one, or the backend's refused upgrade) sent in-band."""
        try:
            payload = json.loads(bytes(body))
        except ValueError:
            payload = {"error": {"message": "codex-pool could not serve the request.", "type": "error"}}
        retry = {k: v for k, v in headers.items() if k.lower() == "retry-after"}
        await self.bridge.client.send(frames.error_message(status, payload, retry))

    async def _try(self, hop: Hop) -> bool:
        """Send the request on ``hop``; True once it is answered, False to move on (``hop`` closed)."""
        attempt, client = hop.attempt, self.bridge.client
        attempt.inc = self.inc
        attempt.reason = f"failover after {self.failures[-1].label}" if self.failures else hop.reason
        hop.reason = "the socket keeps its account"
        patch = attempt.fast(self.request.obj or {})
        owner = attempt.crew.memory.turn_owner(_turn_state(self.request))
        foreign = self.bridge.owners.foreign_to(attempt.account.id)
        text, dropped = frames.for_account(self.request, turn_state_ok=owner == attempt.account.id,
                                           foreign=lambda blob: foreign(digest(blob)), patch=patch)
        if dropped:
            log.info("%s: left out %d reasoning item(s) another account made", attempt.account.name, dropped)
        held: list[str] = []
        size = 0
        try:
            await hop.upstream.conn.send(text)
            while True:
                event = frames.read_event(_text(await self._upstream(hop)))
                self._observe(hop, event)
                if event.kind == "preamble" and size < HOLD_LIMIT:
                    held.append(event.text)
                    size += len(event.text)
                    continue
                if event.kind in ("failover", "unauthorized"):
                    await hop.close()
                    self.failures.append(await attempt.failed(event) if event.kind == "failover"
                                         else await attempt.unauthorized())
                    return False
                break
        except ConnectionClosed:
            await hop.close()
            self.failures.append(await attempt.dropped())
            return False
        except ClientGone:
            record(self.bridge.pipeline, attempt, CLIENT_GONE, self.started, "the client went away")
            raise
        for message in held:
            await client.send(message)
        await self._relay(hop, event)
        return True

    async def _upstream(self, hop: Hop) -> str | bytes:
        """The next upstream message; :class:`ClientGone` if the client leaves first."""
        client, upstream = self.bridge.client, hop.reads.future()
        if not client.reads.future().done():
            await _first(upstream, client.reads.future())
        if not upstream.done() and client.left():
            raise ClientGone
        return await hop.reads.next()

    async def _relay(self, hop: Hop, first: frames.Event) -> None:
        """Pass the answer on from its first output to its end, then write the decision down."""
        bridge, attempt, event = self.bridge, hop.attempt, first
        try:
            await bridge.client.send(event.text)
            while not event.terminal:
                event = frames.read_event(_text(await self._upstream(hop)), started=True)
                self._observe(hop, event)
                await bridge.client.send(event.text)
        except ConnectionClosed as exc:
            record(bridge.pipeline, attempt, STREAM_DROPPED, self.started,
                   "upstream closed the socket after output started")
            await bridge.upstream_closed(exc)
            return
        except ClientGone:
            record(bridge.pipeline, attempt, CLIENT_GONE, self.started, "the client went away mid-answer")
            raise
        status = 200 if event.error is None else (event.status or 400)
        if event.kind != "limit":
            record(bridge.pipeline, attempt, status, self.started)
        else:  # the backend's connection-age limit: both sides start over, the client on a new socket
            record(bridge.pipeline, attempt, status, self.started,
                   "connection-age limit; the client reconnects")
            bridge.hop = None
            await hop.close()
            await bridge.client.close(1000)

    def _observe(self, hop: Hop, event: frames.Event) -> None:
        attempt = hop.attempt
        if event.type == "codex.rate_limits" and isinstance(event.data, dict):
            attempt.crew.background(partial(attempt.crew.quota.observe_event, attempt.account, event.data))
        made = frames.response_id(event)
        if made is not None:
            hop.made.add(made)
        blobs = frames.reasoning_blobs(event)
        if blobs:
            self.bridge.owners.learn(attempt.account.id, map(digest, blobs))
