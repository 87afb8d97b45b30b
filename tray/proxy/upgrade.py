"""One account's upstream WebSocket for a client socket: opening it, and what its failures mean.

:class:`Upgrade` is an :class:`~tray.proxy.attempt.Attempt` whose send is a WebSocket upgrade: the
same fresh token, the same 401 → refresh → retry, the same cooldowns and needs-login marking, the
same decision record. :meth:`Upgrade.open` gives the open :class:`~tray.proxy.dialer.Upstream`, the
backend's refusal to pass on (:class:`~tray.proxy.dialer.Refused`, e.g. a 400 or ``usage_not_included``)
or a :class:`~tray.proxy.pooled.Failure` that moves on to the next account. :meth:`Upgrade.failed`
and :meth:`Upgrade.dropped` cool the account down after an in-band error or a closed socket before
an answer's first output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from starlette.responses import Response

from tray.errors import PoolError, RefreshError, StoreError
from tray.models import PoolAvailable
from tray.proxy.attempt import Attempt
from tray.proxy.dialer import Refused, Upstream, dial, socket_url
from tray.proxy.frames import Event
from tray.proxy.pipeline import Pipeline
from tray.proxy.pooled import Failure, when
from tray.proxy.request import Incoming
from tray.proxy.shaping import upstream_headers
from tray.routing import decide_fast, for_failure, is_entitlement_error

log = logging.getLogger(__name__)

HTML_MARK = "html"


@dataclass
class Upgrade(Attempt):
    """An attempt whose answer is an upstream socket (``inc`` is the client's upgrade request;
    ``proxy``: the forward proxy to dial through, None for a direct connection)."""

    proxy: str | None = None

    async def open(self) -> Upstream | Refused | Failure:
        try:
            return await self._open()
        except RefreshError as exc:
            return Failure("refresh failed", str(exc))
        except StoreError as exc:
            log.warning("%s: pool file write failed while opening a socket (%s); trying the next account",
                        self.account.name, exc)
            return Failure("pool busy", str(exc))
        except PoolError as exc:
            log.warning("%s: socket failed (%s); trying the next account", self.account.name, exc)
            return await self._cool(for_failure(self.account.id, "transport", 0, self.crew.clock()),
                                    Failure("transport error", f"{self.account.name}: {exc}"))

    async def _open(self) -> Upstream | Refused | Failure:
        refused = await self._fresh_token()
        if refused is not None:
            return refused
        answer = await self._dial()
        if isinstance(answer, Refused) and answer.status == 401:
            refused = await self._fresh_token(after_401=True)
            if refused is not None:
                return refused
            answer = await self._dial()
            if isinstance(answer, Refused) and answer.status == 401:
                return await self._durable_401()
        if isinstance(answer, Upstream):
            self.response_headers = {k.lower(): v for k, v in answer.headers}
            return answer
        return await self._refused(answer)

    async def _dial(self) -> Upstream | Refused:
        crew, inc = self.crew, self.inc
        owner = crew.memory.turn_owner(inc.turn_state)
        headers = upstream_headers(
            inc.headers,
            access_token=self.account.tokens.access_token,
            chatgpt_account_id=self.account.identity.chatgpt_account_id,
            turn_state=inc.turn_state if owner == self.account.id else None,
            defaults=dict(inc.defaults),
        )
        url = socket_url(crew.upstream_url, inc.path, inc.query)
        return await dial(url, headers, self.account.tokens.access_token, proxy=self.proxy)

    async def _refused(self, refused: Refused) -> Refused | Failure:
        status, headers, body = refused.status, refused.headers, refused.body
        self.response_headers = headers
        if status == 429 and not is_entitlement_error(body):
            self.crew.background(partial(self.crew.quota.observe_429, self.account, headers, body))
            label = "usage limit" if b"usage_limit" in body else "429"
            return await self._cool(self._cooldown_after_429(headers, body),
                                    Failure(label, f"{self.account.name}: upgrade answered 429", 429))
        html = HTML_MARK in headers.get("content-type", "").lower()
        if status >= 500 or (status == 403 and html):
            kind = "5xx" if status >= 500 else "html 403"
            cooldown = for_failure(self.account.id, kind, status, self.crew.clock())
            return await self._cool(cooldown, Failure(kind, f"{self.account.name}: upgrade answered {status}",
                                                      status))
        return refused  # the client's answer (a 400, an entitlement 429...)

    async def failed(self, event: Event) -> Failure:
        """Cool this account down after an in-band error before the first output (``event.kind``
        ``"failover"``), feeding a usage limit's quota to the cache."""
        now = self.crew.clock()
        error = event.error
        limited = event.status == 429 or (error is not None and error.kind == "usage_limit")
        if limited:
            headers, body = event.headers, event.error_body
            self.crew.background(partial(self.crew.quota.observe_429, self.account, headers, body))
            label = "usage limit" if b"usage_limit" in body else "429"
            return await self._cool(self._cooldown_after_429(headers, body),
                                    Failure(label, f"{self.account.name}: in-band 429", 429))
        kind = "overloaded" if error is not None and error.kind == "overloaded" else "5xx"
        message = (error.message or error.code or kind) if error is not None else kind
        return await self._cool(for_failure(self.account.id, kind, event.status or 200, now),
                                Failure(kind, f"{self.account.name}: {message}", event.status or 200))

    async def unauthorized(self) -> Failure:
        """An in-band 401 before the first output: a fresh token for the next socket on this account."""
        refused = await self._fresh_token(after_401=True)
        if refused is not None:
            return refused
        return Failure("401", f"{self.account.name}: in-band 401; its token was refreshed", 401)

    async def dropped(self) -> Failure:
        """Cool this account down after its socket closed before the answer's first output."""
        cooldown = for_failure(self.account.id, "ended", 200, self.crew.clock())
        return await self._cool(cooldown, Failure("stream ended", f"{self.account.name}: socket closed"
                                                  " before any output", 200))

    def fast(self, obj: Mapping[str, Any]) -> dict[str, str]:
        """Fast mode for one ``response.create`` on this account: the fields to set (none, or
        ``service_tier: "priority"``); the decision is kept for this request's record."""
        previous = self.plan.sticky_fast if self.plan.sticky_account == self.account.id else None
        decision = decide_fast(obj, self.view, self.plan.settings, previous, self.crew.clock())
        self.fast_on, self.fast_note = decision.on, decision.note
        return {"service_tier": "priority"} if decision.on else {}


async def connect(pipeline: Pipeline, inc: Incoming, tried: set[int], failures: list[Failure],
                  proxy: str | None = None) -> tuple[Upgrade, Upstream] | Refused | Response:
    """Open an upstream socket for ``inc`` on the best account not in ``tried`` (the plan's order,
    failing over as an HTTP request does). Returns the attempt and its socket, the backend's
    refusal to pass on, or the pooled answer when no account could (recorded like HTTP's)."""
    started = time.perf_counter()
    now = pipeline.clock()
    accounts = [a for a in pipeline.health.routable(pipeline.reads.routable(now), now) if a.id not in tried]
    if not accounts:
        return pipeline.unserved(inc, failures, started)
    pipeline.quota.touch(accounts, now)
    views = await pipeline.quota.prepare(accounts, now)
    plan = pipeline.routing.plan(inc, accounts, views, now, pipeline.health.turn_owner(inc.turn_state))
    failures.extend(Failure("usage limit", f"{a.name}: limit reached until {when(until)}", 429, until)
                    for a, until in plan.held)
    reason = f"failover after {failures[-1].label}" if failures else plan.reason
    for account in plan.order:
        tried.add(account.id)
        attempt = Upgrade(pipeline.crew, inc, plan, account, views.get(account.id), reason, proxy=proxy)
        opened = await attempt.open()
        if isinstance(opened, Failure):
            failures.append(opened)
            if opened.final:
                break
            reason = f"failover after {opened.label} on {account.name}"
            continue
        if isinstance(opened, Refused):
            record(pipeline, attempt, opened.status, started)
            return opened
        return attempt, opened
    return pipeline.unserved(inc, failures, started, plan.scores)


def record(pipeline: Pipeline, attempt: Upgrade, status: int, started: float,
           note: str | None = None) -> None:
    """Write down one answered ``response.create`` (or a refused upgrade) as HTTP answers are: the
    decision, the affinity and cleared cooldown after a 2xx, quota headers, dormant touches."""
    latency = (time.perf_counter() - started) * 1000.0
    ok = 200 <= status < 300
    if ok and pipeline.health.exhausted:
        pipeline.health.exhausted = False
        pipeline.emit(PoolAvailable())
    decision = attempt.decision(status, latency)
    if note:
        decision = replace(decision, reason=f"{decision.reason}; {note}")
    if ok:
        pipeline.routing.succeeded(attempt.inc, attempt.plan, attempt.account, attempt.fast_on)
    work = attempt.after_commit(status)
    attempt.response_headers = {}  # the 101's headers count once, not again for every later request
    store = pipeline.store

    def write() -> None:
        with store.atomic():
            work()
            store.record_decision(decision)

    pipeline.background(write)
