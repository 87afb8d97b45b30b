"""A fake of chatgpt.com's Codex backend under ``/backend-api`` (tests only).

``make_upstream()`` returns a :class:`FakeUpstream`; run its ``app`` with
``tests.fakes.runner.serving(fake.app)`` and point codex-pool's ``upstream-url`` at
``<server url>/backend-api``. Routes:

- ``POST /backend-api/codex/responses``: an SSE answer (or the account's scripted reply);
  ``POST /backend-api/codex/responses/compact``: a JSON ``{"output": [...]}`` answer;
- ``GET /backend-api/codex/responses`` upgraded to a WebSocket: the Responses WebSocket (see
  ``tests/fakes/upstream_ws.py``; its messages are recorded with ``method="WS"``);
- ``GET /backend-api/wham/usage``: the account's usage payload;
- ``GET /backend-api/codex/models``: a Codex-style ``{"models": [...]}`` list.

Every request needs ``Authorization: Bearer <token>`` with a token registered by ``add_account`` or
``add_token`` (else 401 like upstream; a JWT past its ``exp`` gets ``token_expired``). A
``chatgpt-account-id`` header naming another account than the token's gets a 403 (a fake-only check
that catches a proxy mixing up credentials). The answer text names the serving account
(``Hi from <account id>!``) and the ``x-fake-account`` header does too, so tests can assert routing.

How the answers go on the wire (chunking, keep-alive comments, gzip) is seeded-random by default and
set per test with ``fake.wire(...)`` (see ``tests/fakes/upstream_shape.py``).

Which reply a Codex request gets: the account's script queue first, then a 429 if its usage says it
is exhausted, then the fault plan (``faults(...)``), then the account's default (``replies.ok()``).
``make_chatgpt()`` serves this fake and the auth fake (``tests/fakes/auth_server.py``) on one server.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tests.fakes import replies
from tests.fakes import upstream_wire as wire
from tests.fakes.faults import Faults
from tests.fakes.replies import Reply
from tests.fakes.upstream_app import build_app
from tests.fakes.upstream_records import FakeAccount, Recorded
from tests.fakes.upstream_shape import GzipWire, WireShape, wire_chunks
from tests.fakes.upstream_wire import parse_sse, sse_event, usage_payload
from tests.fakes.upstream_ws import Owners, WsKnobs

__all__ = [
    "FakeAccount",
    "FakeUpstream",
    "Faults",
    "Recorded",
    "Reply",
    "WireShape",
    "make_upstream",
    "parse_sse",
    "replies",
    "sse_event",
    "usage_payload",
]

DEFAULT_MODELS = ("gpt-5.5", "gpt-5.4", "gpt-5.3-codex")


class FakeUpstream:
    """The fake backend's state and knobs; safe to drive from the test thread while it serves."""

    def __init__(self, *, clock: Any = time.time, models: tuple[str, ...] = DEFAULT_MODELS) -> None:
        self.clock = clock
        self.models = models
        self.accounts: dict[str, FakeAccount] = {}
        self.tokens: dict[str, str] = {}  # access token -> account id
        self.requests: list[Recorded] = []
        self.usage_calls: Counter[str] = Counter()  # account id -> wham/usage calls
        self.served: Counter[str] = Counter()  # account id -> Codex requests answered (any reply)
        self.outcomes: Counter[str] = Counter()  # "ok", "429", "drop", "stream_error", "401"...
        self.open_streams = 0
        self.max_open_streams = 0
        self.completed_streams = 0
        self.disconnects = 0  # callers that went away before the fake finished answering them
        self.fault_plan: Faults | None = None
        self.ws = WsKnobs()  # the WebSocket endpoint's switches and counters (upstream_ws.py)
        self.owners = Owners()
        self._lock = threading.Lock()
        self._seq = 0
        self.shape = WireShape()
        self._wire_rng = random.Random(0)
        self.routes = build_app(self)  # the fake's own Starlette app (its state holds the usage knobs)
        self.app: ASGIApp = GzipWire(self.routes, self._gzip_next)

    # ---- accounts and tokens -------------------------------------------------------------------
    def add_account(
        self,
        account_id: str,
        access_token: str,
        usage: dict[str, Any] | None = None,
        *,
        plan_type: str = "plus",
        default: Reply | None = None,
    ) -> FakeAccount:
        """Register an account and its access token; ``usage`` defaults to a fresh, unused payload."""
        payload = usage if usage is not None else usage_payload(plan_type=plan_type, now=self.clock())
        account = FakeAccount(account_id, payload, default or replies.ok())
        with self._lock:
            self.accounts[account_id] = account
            self.tokens[access_token] = account_id
        return account

    def add_token(self, account_id: str, access_token: str) -> None:
        """Accept another access token for an account (e.g. one the auth fake just issued); an
        account not seen before is registered with a fresh, unused usage payload."""
        if account_id not in self.accounts:
            self.add_account(account_id, access_token)
            return
        with self._lock:
            self.tokens[access_token] = account_id

    def revoke_token(self, access_token: str) -> None:
        with self._lock:
            self.tokens.pop(access_token, None)

    def script(self, account_id: str, *queued: Reply) -> None:
        """Queue replies for the account's next Codex requests, in order."""
        with self._lock:
            self.accounts[account_id].script.extend(queued)

    def script_handshake(self, account_id: str, *queued: Reply) -> None:
        """Queue refusals (``usage_limit()``, ``unauthorized()``...) for the account's next WebSocket
        upgrades: each is answered with that status instead of the 101."""
        with self._lock:
            self.accounts[account_id].handshake_script.extend(queued)

    def script_usage(self, account_id: str, *queued: Reply) -> None:
        """Queue replies (errors, slow answers) for the account's next ``wham/usage`` calls."""
        with self._lock:
            self.accounts[account_id].usage_script.extend(queued)

    def script_models(self, account_id: str, *queued: Reply) -> None:
        """Queue replies (``raw`` bodies, errors) for the account's next ``codex/models`` calls."""
        with self._lock:
            self.accounts[account_id].models_script.extend(queued)

    def set_default(self, account_id: str, reply: Reply) -> None:
        with self._lock:
            self.accounts[account_id].default = reply

    def set_usage(self, account_id: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Replace the account's usage state: a whole payload, or ``usage_payload(**kwargs)``."""
        if payload is None:
            kwargs.setdefault("plan_type", self.accounts[account_id].plan_type)
            kwargs.setdefault("now", self.clock())
            payload = usage_payload(**kwargs)
        with self._lock:
            self.accounts[account_id].usage = payload

    def usage_of(self, account_id: str) -> dict[str, Any]:
        """The usage payload the account would report right now."""
        return wire.live_usage(self.accounts[account_id].usage, self.clock())

    def faults(
        self,
        *,
        rate_429: float = 0.0,
        rate_401: float = 0.0,
        rate_5xx: float = 0.0,
        rate_html_403: float = 0.0,
        rate_slow: float = 0.0,
        rate_drop: float = 0.0,
        rate_overloaded: float = 0.0,
        seed: int = 0,
        slow_delay: float = 1.0,
        resets_in: float = 30.0,
    ) -> Faults:
        """Answer unscripted Codex requests with random faults at these rates (reproducible by seed).
        All rates zero switches fault mode off."""
        plan = Faults(
            rate_429=rate_429,
            rate_401=rate_401,
            rate_5xx=rate_5xx,
            rate_html_403=rate_html_403,
            rate_slow=rate_slow,
            rate_drop=rate_drop,
            rate_overloaded=rate_overloaded,
            seed=seed,
            slow_delay=slow_delay,
            resets_in=resets_in,
        )
        with self._lock:
            self.fault_plan = plan if plan.total > 0 else None
        return plan

    def wire(self, shape: WireShape | None = None, *, seed: int | None = None, **chances: float) -> WireShape:
        """Set how answers go on the wire: a whole :class:`WireShape`, or some of its chances changed
        (``fake.wire(coalesce=1.0)`` sends each answer in one chunk); ``seed`` restarts the draws."""
        with self._lock:
            self.shape = WireShape(**{**vars(shape or self.shape), **chances})
            if seed is not None:
                self._wire_rng = random.Random(seed)
            return self.shape

    def chunks(self, frames: list[bytes]) -> list[bytes]:
        """The chunks one SSE answer goes out in, drawn from the current shape."""
        with self._lock:
            return wire_chunks(frames, self.shape, self._wire_rng)

    def _gzip_next(self) -> bool:
        with self._lock:
            return self.shape.gzip > 0 and self._wire_rng.random() < self.shape.gzip

    # ---- what the app calls --------------------------------------------------------------------
    def identify(self, token: str | None) -> tuple[str | None, str | None]:
        """``(account id, None)`` for a good token, else ``(None, 401 error code)``."""
        if not token:
            return None, "missing_authorization"
        with self._lock:
            account_id = self.tokens.get(token)
        if account_id is None:
            return None, "token_invalidated"
        expires = _jwt_exp(token)
        if expires is not None and expires <= self.clock():
            return None, "token_expired"
        return account_id, None

    def record(self, method: str, path: str, query: str, headers: dict[str, str], body: Any,
               raw: bytes = b"", socket: int = 0) -> Recorded:
        """Note a request (a WebSocket message: ``socket`` numbers its connection) and which account
        its bearer token belongs to (None if unknown); ``raw`` is the body as it came on the wire
        (still compressed when it was)."""
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        with self._lock:
            account_id = self.tokens.get(token) if token else None
            rec = Recorded(method, path, query, headers, body, account_id, raw, socket)
            self.requests.append(rec)
        return rec

    def next_reply(self, account_id: str) -> Reply:
        with self._lock:
            account = self.accounts[account_id]
            self.served[account_id] += 1
            if account.script:
                return account.script.popleft()
            blocked = wire.blocking_reset(wire.live_usage(account.usage, self.clock()), self.clock())
            if blocked is not None:
                return replies.usage_limit(resets_in=max(1, blocked - self.clock()), exhaust=False)
            if self.fault_plan is not None:
                picked = self.fault_plan.pick()
                if picked is not None:
                    return picked
            return account.default

    def next_handshake_reply(self, account_id: str) -> Reply | None:
        with self._lock:
            script = self.accounts[account_id].handshake_script
            return script.popleft() if script else None

    def next_usage_reply(self, account_id: str) -> Reply | None:
        with self._lock:
            self.usage_calls[account_id] += 1
            script = self.accounts[account_id].usage_script
            return script.popleft() if script else None

    def next_models_reply(self, account_id: str) -> Reply | None:
        with self._lock:
            script = self.accounts[account_id].models_script
            return script.popleft() if script else None

    def note(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def stream_opened(self) -> None:
        with self._lock:
            self.open_streams += 1
            self.max_open_streams = max(self.max_open_streams, self.open_streams)

    def stream_closed(self, *, completed: bool, disconnected: bool) -> None:
        with self._lock:
            self.open_streams -= 1
            self.completed_streams += completed
            self.disconnects += disconnected

    def hung_up(self) -> None:
        """A caller went away while its answer was held back (``Reply.hold``)."""
        with self._lock:
            self.disconnects += 1

    def next_id(self) -> str:
        with self._lock:
            self._seq += 1
            return f"resp_fake_{self._seq}"

    # ---- assertions helpers --------------------------------------------------------------------
    def codex_requests(self, account_id: str | None = None) -> list[Recorded]:
        """Requests to the responses routes (HTTP posts and WebSocket messages), optionally only those
        authenticated as ``account_id``."""
        with self._lock:
            found = [r for r in self.requests
                     if r.path.startswith("/backend-api/codex/responses") and r.method != "GET"]
        return [r for r in found if account_id is None or r.account_id == account_id]

    def describe(self) -> str:
        """Every recorded request, one per line, with Authorization redacted (safe to print)."""
        with self._lock:
            return "\n".join(repr(r) for r in self.requests)


def make_upstream(*, clock: Any = time.time, models: tuple[str, ...] = DEFAULT_MODELS) -> FakeUpstream:
    """A fresh fake backend with no accounts; ``fake.app`` is the Starlette app to serve."""
    return FakeUpstream(clock=clock, models=models)


def _jwt_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class Dispatcher:
    """One ASGI app that sends ``/backend-api/*`` to the upstream fake and everything else to ``other``."""

    def __init__(self, upstream: Any, other: Any | None) -> None:
        self.upstream = upstream
        self.other = other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if self.other is None or path == "/backend-api" or path.startswith("/backend-api/"):
            await self.upstream(scope, receive, send)
        else:
            await self.other(scope, receive, send)


@dataclass
class FakeChatGPT:
    """The backend fake and the auth fake on one server: ``upstream-url`` = ``<url>/backend-api``,
    ``auth-url`` = ``<url>``. Serve ``app`` with ``serving(chatgpt.app)``."""

    upstream: FakeUpstream
    auth: Any | None
    app: Dispatcher


def make_chatgpt(upstream: FakeUpstream | None = None, auth: Any | None = None) -> FakeChatGPT:
    """Mount ``upstream`` (default: a new fake) and ``auth`` (default: ``tests.fakes.auth_server``'s
    fake when that module exists) on one ASGI app. ``auth`` may be an ASGI app or an object with an
    ``app`` attribute. Tokens the auth fake issues are accepted by the upstream fake when the auth fake
    offers a hook for it (see :func:`_link`)."""
    upstream = upstream if upstream is not None else make_upstream()
    if auth is None:
        auth = _default_auth()
    _link(upstream, auth)
    other = getattr(auth, "app", auth) if auth is not None else None
    return FakeChatGPT(upstream, auth, Dispatcher(upstream.app, other))


def _default_auth() -> Any | None:
    """The auth fake from ``tests/fakes/auth_server.py``, or None when that module is missing."""
    try:
        module = importlib.import_module("tests.fakes.auth_server")
    except ModuleNotFoundError:
        return None
    factory = getattr(module, "FakeAuth", None)
    return factory() if callable(factory) else None


def _link(upstream: FakeUpstream, auth: Any | None) -> None:
    """Make every access token the auth fake issues (logins, refreshes, ``issue()``/``token_set()``
    in tests) valid upstream for its user's account, registering the account if it is new. Uses the
    auth fake's ``on_tokens_issued(callback)`` hook if it has one, else wraps its ``issue`` method."""
    register = getattr(auth, "on_tokens_issued", None)
    if callable(register):
        register(upstream.add_token)
        return
    issue = getattr(auth, "issue", None)
    if auth is None or not callable(issue):
        return

    def issue_and_register(user: Any = None, expires_in: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = issue(user, expires_in)
        account_id = str((user if user is not None else auth.user).account_id)
        upstream.add_token(account_id, str(body["access_token"]))
        return body

    auth.issue = issue_and_register
