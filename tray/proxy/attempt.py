"""One attempt of one request on one account, and how its outcome is classified.

:meth:`Attempt.run` returns the client's answer (a committed :class:`Relay` or a buffered response)
or a :class:`Failure` that sends the pipeline on to the next candidate.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import httpx
from starlette.responses import Response

from tray.errors import PermanentRefreshError, PoolError, RefreshError, StoreError, TransientRefreshError
from tray.models import Account, AccountState, Cooldown, Decision, NeedsLogin
from tray.proxy import answers, chatanswer, chatrelay
from tray.proxy import plan as planner
from tray.proxy.decoding import wire_headers
from tray.proxy.pooled import Failure
from tray.proxy.relay import EarlyFailure, Opened, Relay, is_event_stream, open_stream
from tray.proxy.request import Collaborators, Incoming
from tray.proxy.shaping import TURN_STATE, client_headers, upstream_headers
from tray.proxy.sse import SSEEvent
from tray.quota import UsageView
from tray.routing import for_429, for_failure, is_entitlement_error

log = logging.getLogger(__name__)


def _proxy_refused(why: str) -> Failure:
    """The forward proxy turned the connection down: the same for every account, so no account is
    cooled down and no other one is tried."""
    log.warning("the forward proxy refused the upstream connection (%s)", why)
    return Failure("forward proxy", f"the forward proxy refused the connection ({why}); check "
                                    "upstream-proxy in config.toml or HTTPS_PROXY/HTTP_PROXY/ALL_PROXY")


def _is_html(response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "").lower()


@dataclass
class Attempt:
    crew: Collaborators
    inc: Incoming
    plan: planner.Plan
    account: Account
    view: UsageView | None
    reason: str
    fast_note: str | None = None
    fast_on: bool = False
    response_headers: dict[str, str] = field(default_factory=dict)
    sent_sealed: tuple[bytes, ...] = ()  # digests of the encrypted items the last send carried

    async def run(self) -> Response | Failure:
        """The client's answer from this account, or why the request should go on to the next one."""
        try:
            return await self._run()
        except RefreshError as exc:
            return Failure("refresh failed", str(exc))
        except StoreError as exc:
            # The pool file is busy or damaged (another process holds the write lock past the busy
            # timeout...): the lease, a quota update or a state change could not be stored. That is
            # no verdict on this account; another one may well serve, so go on like a transport error.
            log.warning("%s: pool file write failed during the attempt (%s); trying the next account",
                        self.account.name, exc)
            return Failure("pool busy", str(exc))
        except PoolError as exc:
            log.warning("%s: attempt failed (%s); trying the next account", self.account.name, exc)
            return Failure("pool error", str(exc))

    async def _run(self) -> Response | Failure:
        refused = await self._fresh_token()
        if refused is not None:
            return refused
        response: httpx.Response | Response | Failure = await self._authorized()
        if isinstance(response, httpx.Response) and response.status_code == 400 and self.sent_sealed:
            response = await self._without_unreadable(response)
        if not isinstance(response, httpx.Response):
            return response
        return await self._classify(response)

    async def _authorized(self) -> httpx.Response | Failure:
        """The upstream answer; a 401 gets one forced token refresh and one more send, a second
        401 marks the account as needing a login."""
        response = await self._send()
        if isinstance(response, Failure) or response.status_code != 401:
            return response
        await response.aclose()
        refused = await self._fresh_token(after_401=True)
        if refused is not None:
            return refused
        response = await self._send()
        if isinstance(response, Failure) or response.status_code != 401:
            return response
        await response.aclose()
        return await self._durable_401()

    async def _fresh_token(self, *, after_401: bool = False) -> Failure | None:
        """A token that is not due (``after_401``: a new one, upstream refused the last); the
        failure when none can be had."""
        status = 401 if after_401 else 0
        try:
            self.account = await self.crew.refresher.ensure_fresh(self.account, force=after_401)
        except PermanentRefreshError as exc:
            return Failure("needs login", f"{self.account.name}: sign-in expired ({exc.code})", status)
        except TransientRefreshError as exc:
            return Failure("refresh failed", str(exc), status)
        return None

    async def _without_unreadable(self, response: httpx.Response) -> httpx.Response | Response | Failure:
        """A 400 for encrypted content this account cannot read (made by an account the proxy did
        not know of, before a restart say, or guessed wrong): sent once more without the encrypted
        items not known for sure to be this account's, which are marked as no account's so no later
        turn carries them. Any other 400 is the client's, as it came."""
        body = await answers.read_passed_on(response)
        if isinstance(body, Response):
            return body
        if b"invalid_encrypted_content" in body:
            owners = self.crew.owners
            owners.refused(self.account.id, self.sent_sealed)
            if any(owners.foreign_to(self.account.id)(d) for d in self.sent_sealed):
                log.warning("%s: the backend could not read encrypted items of the context; sending it "
                            "again without those not known to be this account's", self.account.name)
                return await self._authorized()
            # Every item was known to be this account's: the same body would be refused again.
        self.response_headers = {k.lower(): v for k, v in response.headers.items()}
        return answers.buffered(response.status_code, body, wire_headers(response),
                                self.account.tokens.access_token)

    async def _send(self) -> httpx.Response | Failure:
        crew, inc = self.crew, self.inc
        foreign = crew.owners.foreign_to(self.account.id)
        body, self.fast_on, self.fast_note, left_out = planner.attempt_body(
            inc, self.account, self.view, self.plan, crew.clock(), foreign)
        self.sent_sealed = tuple(d for d in inc.sealed if not foreign(d))
        if left_out:
            # A compaction item is the summary of the conversation before it: worth a warning.
            level = logging.WARNING if any(kind != "reasoning" for kind in left_out) else logging.INFO
            log.log(level, "%s: left out %d encrypted item(s) another account made (%s)", self.account.name,
                    len(left_out), ", ".join(sorted(set(left_out))))
        owner = crew.memory.turn_owner(inc.turn_state)
        # A body rebuilt for this attempt is plain JSON: the client's Content-Encoding was for its bytes.
        sent = inc.headers if body is inc.body else tuple(h for h in inc.headers
                                                          if h[0] != "content-encoding")
        headers = upstream_headers(
            sent,
            access_token=self.account.tokens.access_token,
            chatgpt_account_id=self.account.identity.chatgpt_account_id,
            turn_state=inc.turn_state if owner == self.account.id else None,
            defaults=dict(inc.defaults),
        )
        url = crew.upstream_url.rstrip("/") + inc.path
        # As bytes: a client's header value may hold non-ASCII bytes, which httpx would refuse to
        # encode; latin-1 gives back exactly the bytes the client sent.
        raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        request = crew.http.build_request(
            inc.method, url, params=inc.query or None, headers=raw_headers,
            content=body if inc.method not in ("GET", "HEAD") else None,
        )
        try:
            return await crew.http.send(request, stream=True)
        except httpx.PoolTimeout:
            # Our own connection limit, shared by every account: no verdict on this one, and the
            # next candidate would wait for the same pool.
            log.warning("upstream connection limit reached; asking the client to retry shortly")
            return Failure("connection limit", "every upstream connection of codex-pool is in use")
        except httpx.ProxyError as exc:
            return _proxy_refused(type(exc).__name__)
        except httpx.TimeoutException as exc:
            return await self._cool(for_failure(self.account.id, "timeout", 0, crew.clock()),
                              Failure("timeout", f"{self.account.name}: {type(exc).__name__}"))
        except httpx.HTTPError as exc:
            return await self._cool(for_failure(self.account.id, "transport", 0, crew.clock()),
                              Failure("transport error", f"{self.account.name}: {type(exc).__name__}"))

    def _cooldown_after_429(self, headers: Mapping[str, str], body: bytes) -> Cooldown:
        now = self.crew.clock()
        view = self.crew.quota.view(self.account.id, now)
        return for_429(self.account.id, headers, body, view.usage if view is not None else None, now)

    async def _cool(self, cooldown: Cooldown, failure: Failure) -> Failure:
        # Store writes can wait on another process's write lock: the background batch writes the
        # shared cooldown and the failover goes straight on. If the pool file stays busy, the batch
        # logs it; only the shared cooldown is lost.
        self.crew.memory.hold(self.account.id, cooldown.until)
        self.crew.background(partial(self.crew.store.set_cooldown, cooldown),
                             partial(self.crew.memory.release, self.account.id))
        log.info("%s: %s; cooling down until %.0f (%s)", self.account.name, failure.label,
                 cooldown.until, cooldown.source)
        return Failure(failure.label, failure.message, failure.status, cooldown.until, self.account.id)

    async def _durable_401(self) -> Failure:
        reason = "still unauthorized after a token refresh"
        self.crew.memory.hold(self.account.id, math.inf)
        self.crew.background(partial(self.crew.store.set_state, self.account.id, AccountState.NEEDS_LOGIN,
                                     reason), partial(self.crew.memory.release, self.account.id))
        log.warning("Account %s needs a new login: %s", self.account.name, reason)
        self.crew.emit(NeedsLogin(account_id=self.account.id, name=self.account.name, reason=reason))
        return Failure("401", f"{self.account.name}: {reason}", 401)

    async def _classify(self, response: httpx.Response) -> Response | Failure:
        status = response.status_code
        self.response_headers = {k.lower(): v for k, v in response.headers.items()}
        if status == 429:
            body = await answers.read_some(response)
            if is_entitlement_error(body):
                log.info("%s: plan does not include Codex; passing the answer on", self.account.name)
                token = self.account.tokens.access_token
                return answers.buffered(status, body, wire_headers(response), token)
            self.crew.background(partial(self.crew.quota.observe_429, self.account, self.response_headers,
                                         body))
            cooldown = self._cooldown_after_429(self.response_headers, body)
            label = "usage limit" if b"usage_limit" in body else "429"
            return await self._cool(cooldown, Failure(label, f"{self.account.name}: HTTP 429", 429))
        if status == 407:  # chatgpt.com never asks for proxy credentials: the forward proxy does
            await answers.read_some(response)
            return _proxy_refused("407 Proxy Authentication Required")
        if status >= 500 or (status == 403 and _is_html(response)):
            await answers.read_some(response)
            kind = "5xx" if status >= 500 else "html 403"
            cooldown = for_failure(self.account.id, kind, status, self.crew.clock())
            return await self._cool(cooldown, Failure(kind, f"{self.account.name}: HTTP {status}", status))
        if not 200 <= status < 300:
            return await answers.passed_on(response, self.account.tokens.access_token)
        if self.inc.mode == "models":
            return await answers.model_list(response)
        opened = await open_stream(response)
        if isinstance(opened, EarlyFailure):
            return await self._early(opened)
        if self.inc.mode == "aggregate" and is_event_stream(response):
            shape = chatanswer.completion if self.inc.chat is not None else None
            return await answers.aggregate(opened, self._observe, self.account.name, shape)
        return self._relay(opened, status)

    async def _early(self, early: EarlyFailure) -> Failure:
        now = self.crew.clock()
        if early.kind == "usage_limit" and early.error is not None:
            payload = json.dumps({"error": early.error.payload}).encode()
            self.crew.background(partial(self.crew.quota.observe_429, self.account, {}, payload))
            cooldown = self._cooldown_after_429({}, payload)
            failure = Failure("usage limit", f"{self.account.name}: {early.message}", 200)
            return await self._cool(cooldown, failure)
        kind = {"overloaded": "overloaded", "oversized": "oversized answer"}.get(early.kind, "stream ended")
        cooldown = for_failure(self.account.id, early.kind, 200, now)
        return await self._cool(cooldown, Failure(kind, f"{self.account.name}: {early.message}", 200))

    def _relay(self, opened: Opened, status: int) -> Response:
        headers = client_headers(wire_headers(opened.response), self.account.tokens.access_token)
        # codex.rate_limits comes ahead of the answer, so the events read before the commit are
        # the ones to watch; the rest of the stream is passed on without being parsed.
        for event in opened.events:
            self._observe(event)
        if self.inc.chat is not None and is_event_stream(opened.response):
            opened = chatrelay.translated(opened, self.inc.chat)
        return Relay(opened, status, headers)

    def _observe(self, event: SSEEvent) -> None:
        if event.type == "codex.rate_limits" and isinstance(event.data, dict):
            self.crew.background(partial(self.crew.quota.observe_event, self.account, event.data))

    # ---- after commit ----------------------------------------------------------------------------

    def decision(self, status: int, latency_ms: float) -> Decision:
        now = self.crew.clock()
        age = self.view.age(now) if self.view is not None and self.view.usable else None
        return Decision(at=now, account_id=self.account.id, account_name=self.account.name,
                        reason=self.reason, scores=tuple(self.plan.scores), fast_note=self.fast_note,
                        cache_age=age, status=status, latency_ms=latency_ms, route=self.inc.route)

    def after_commit(self, status: int) -> Callable[[], None]:
        """In-memory updates now; returns the store writes to run off the loop."""
        account, headers, crew = self.account, self.response_headers, self.crew
        turn = headers.get(TURN_STATE)
        if turn:
            crew.memory.issued(turn, account.id)
        ok = 200 <= status < 300

        def write() -> None:
            crew.quota.observe_headers(account, headers)
            if ok:
                crew.store.clear_cooldown(account.id)
                planner.record_touches(crew.store, self.plan.settings, account, self.view, crew.clock())

        return write
