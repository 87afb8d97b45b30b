"""One proxied request: pick accounts, try them in order, fail over before the first byte.

``Pipeline.handle`` runs the request path of docs/architecture.md: candidates from the store, usage
views, the pure ranking, then per candidate a proactive refresh, an attempt with that account's
credentials (fast mode decided per attempt), and the classification of what came back. 401 gets one
forced refresh and retry; 429, 5xx, HTML 403, transport errors and early in-stream failures move to
the next candidate with a cooldown; anything else is the client's answer. Bookkeeping after a
committed answer (cooldown cleared, affinity, dormant touches, decision log) never delays its bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import httpx
from starlette.responses import Response

from tray.errors import PoolError
from tray.models import Clock, Config, Decision, EventSink, PoolAvailable, PoolExhausted
from tray.proxy import attempt as attempts
from tray.proxy import plan as planner
from tray.proxy import pooled
from tray.proxy.owners import ReasoningOwners
from tray.proxy.pooled import Failure
from tray.proxy.relay import Hangup, Relay, discard
from tray.proxy.request import Collaborators, FreshTokens, Incoming, PoolHealth
from tray.quota import QuotaService
from tray.store import Store

log = logging.getLogger(__name__)

CLIENT_GONE = 499  # the status recorded for a request whose client left before any answer
STREAM_DROPPED = 502  # recorded for an answer upstream cut off after output started (sent as 200)
SEALING_ROUTES = frozenset({"responses", "compact", "v1.responses"})  # answers with encrypted items


class Pipeline:
    """Routes requests over the pool; one per engine (affinity and turn states are per process)."""

    def __init__(
        self,
        *,
        store: Store,
        quota: QuotaService,
        refresher: FreshTokens,
        http: httpx.AsyncClient,
        config: Config,
        clock: Clock,
        events: EventSink | None = None,
        reads: Store | None = None,
        owners: ReasoningOwners | None = None,
    ) -> None:
        self.store = store
        # Reads on the event loop use their own connection: the store serializes calls per
        # connection, and a worker's write waiting on another process's lock must not hold them up.
        self.reads = reads or store
        self.quota = quota
        self.refresher = refresher
        self.http = http
        self.clock = clock
        self.events = events
        self.health = PoolHealth()
        self.routing = planner.Router(self.reads, config, clock)
        self.crew = Collaborators(store=store, quota=quota, refresher=refresher, http=http,
                                  upstream_url=config.upstream_url, clock=clock, memory=self.health,
                                  background=self.background, emit=self.emit,
                                  owners=owners if owners is not None else ReasoningOwners())
        self._bookkeeping: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[Callable[[], object], Callable[[], object] | None]] = []
        self._flusher: asyncio.Task[None] | None = None

    def configure(self, config: Config) -> None:
        """Take a (re)loaded config: the routing keys apply from the next request on (a request in
        flight keeps the settings it was planned with). ``upstream-url`` applies on restart."""
        self.routing.configure(config)

    async def handle(self, inc: Incoming, hangup: Hangup | None = None) -> Response:
        """The client's answer. With ``hangup``, stop trying accounts once the client has left."""
        started = time.perf_counter()
        now = self.clock()
        accounts = self.health.routable(self.reads.routable(now), now)
        if not accounts:
            return self._nothing_routable(inc, now, [], started)
        self.quota.touch(accounts, now)
        views = await self.quota.prepare(accounts, now)
        maker = None
        if inc.sealed:
            self.crew.owners.claim(self.routing.session_of(inc), inc.sealed)
            maker = self.crew.owners.maker(inc.sealed)
        plan = self.routing.plan(inc, accounts, views, now, self.health.turn_owner(inc.turn_state), maker)
        failures = [Failure("usage limit", f"{a.name}: limit reached until {pooled.when(until)}", 429, until)
                    for a, until in plan.held]
        reason = plan.reason
        for account in plan.order:
            attempt = attempts.Attempt(self.crew, inc, plan, account, views.get(account.id), reason)
            # A client that left before the first output is not served by anyone: trying the
            # next account would spend its quota for nobody.
            outcome = await (attempt.run() if hangup is None else hangup.unless_gone(attempt.run(), discard))
            if outcome is None:
                return self._left(inc, plan.scores, started)
            if isinstance(outcome, Failure):
                failures.append(outcome)
                if outcome.final:
                    break
                reason = f"failover after {outcome.label} on {account.name}"
                continue
            self._committed(attempt, outcome, started)
            return outcome
        return self._nothing_routable(inc, self.clock(), failures, started, plan.scores)

    # ---- after the answer ----------------------------------------------------------------------

    def _answered(self, attempt: attempts.Attempt) -> None:
        """What an answer says about encrypted items: the account read those it was sent, and the
        ones its answer carries (seen in the session's next request) are its too."""
        owners = self.crew.owners
        if attempt.sent_sealed:
            owners.learn(attempt.account.id, attempt.sent_sealed)
        if attempt.plan.session is not None and attempt.inc.route in SEALING_ROUTES:
            owners.answered(attempt.plan.session, attempt.account.id)

    def _committed(self, attempt: attempts.Attempt, answer: Response, started: float) -> None:
        status = answer.status_code
        latency = (time.perf_counter() - started) * 1000.0
        if 200 <= status < 300 and self.health.exhausted:
            self.health.exhausted = False
            self.emit(PoolAvailable(attempt.account.id, attempt.account.name))
        decision = attempt.decision(status, latency)
        log.debug("%s %s -> %s (%s): %d after %.1f ms", attempt.inc.method, attempt.inc.route,
                  decision.account_name, decision.reason, status, latency)
        if 200 <= status < 300:
            self.routing.succeeded(attempt.inc, attempt.plan, attempt.account, attempt.fast_on)
            self._answered(attempt)
        work = attempt.after_commit(status)
        if isinstance(answer, Relay):
            # Affinity and the cleared cooldown are written now; the decision once the stream has
            # ended, so an answer upstream cut off shows as what it was.
            self.background(work)
            answer.on_end = partial(self._streamed, decision)
            return

        def write() -> None:
            with self.store.atomic():  # one transaction for the few writes after each answer
                work()
                self.store.record_decision(decision)

        self.background(write)

    def _streamed(self, decision: Decision, how: str) -> None:
        if how == "dropped":
            log.warning("answer from %s was cut off mid-stream", decision.account_name)
            decision = replace(decision, status=STREAM_DROPPED,
                               reason=f"{decision.reason}; upstream dropped the stream after output started")
        elif how == "client gone":
            decision = replace(decision, reason=f"{decision.reason}; the client went away mid-stream")
        self.background(partial(self.store.record_decision, decision))

    def background(self, fn: Callable[[], object], after: Callable[[], object] | None = None) -> None:
        """Run short blocking store writes off the event loop, after the answer started.

        Writes queued while a batch runs go together in the next one: one worker-thread hop and one
        transaction for many answers under load (each write in its own savepoint). ``after`` runs
        on the loop once ``fn``'s batch is over, written or failed."""
        self._pending.append((fn, after))
        if self._flusher is None:
            task = asyncio.ensure_future(self._flush())
            self._flusher = task
            self._bookkeeping.add(task)
            task.add_done_callback(self._bookkeeping.discard)

    async def _flush(self) -> None:
        # Whatever a batch raises, the writer goes on with the writes queued meanwhile: a batch
        # that fails is logged and dropped, never the writer. A busy pool file is its own backoff
        # (each batch waits out the busy timeout), and the loop only turns while writes are queued.
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self._write_batch, [fn for fn, _ in batch])
                except Exception as exc:
                    _write_failed(exc)
                for _, after in batch:
                    if after is not None:
                        try:
                            after()
                        except Exception as exc:
                            _write_failed(exc)
        finally:
            self._flusher = None

    def _write_batch(self, batch: list[Callable[[], object]]) -> None:
        if len(batch) == 1:
            batch[0]()
            return
        with self.store.atomic():
            for fn in batch:
                try:
                    with self.store.atomic():  # a savepoint: one failed write leaves the others
                        fn()
                except Exception as exc:
                    _write_failed(exc)

    async def drain(self) -> None:
        while self._bookkeeping:
            await asyncio.gather(*self._bookkeeping, return_exceptions=True)

    def emit(self, event: Any) -> None:
        if self.events is not None:
            try:
                self.events(event)
            except Exception:
                log.exception("event sink failed")

    def _left(self, inc: Incoming, scores: tuple[Any, ...], started: float) -> Response:
        log.info("%s %s: the client went away before the answer; no other account is tried",
                 inc.method, inc.route)
        latency = (time.perf_counter() - started) * 1000.0
        decision = Decision(at=self.clock(), account_id=None, account_name=None,
                            reason="client went away before the answer", scores=tuple(scores),
                            fast_note=None, cache_age=None, status=CLIENT_GONE, latency_ms=latency,
                            route=inc.route)
        self.background(lambda: self.store.record_decision(decision))
        return Response(status_code=CLIENT_GONE)  # nobody reads it

    # ---- nothing could serve ---------------------------------------------------------------------

    def unserved(self, inc: Incoming, failures: list[Failure], started: float,
                 scores: tuple[Any, ...] = ()) -> Response:
        """The pooled answer (and its recorded decision) when no account could serve ``inc``."""
        return self._nothing_routable(inc, self.clock(), failures, started, scores)

    def _nothing_routable(
        self,
        inc: Incoming,
        now: float,
        failures: list[Failure],
        started: float,
        scores: tuple[Any, ...] = (),
    ) -> Response:
        latency = (time.perf_counter() - started) * 1000.0
        response, reason = pooled.pooled_error(self.reads, now, failures)
        if response.status_code == 429 and not self.health.exhausted:
            self.health.exhausted = True
            soonest = pooled.soonest_reset(self.reads, now, failures)
            self.emit(PoolExhausted(soonest_reset=soonest))
        decision = Decision(
            at=now,
            account_id=None,
            account_name=None,
            reason=reason,
            scores=tuple(scores),
            fast_note=None,
            cache_age=None,
            status=response.status_code,
            latency_ms=latency,
            route=inc.route,
        )
        self.background(lambda: self.store.record_decision(decision))
        log.info("%s %s: %s (%d)", inc.method, inc.route, reason, response.status_code)
        return response


def _write_failed(exc: Exception) -> None:
    # A busy or damaged pool file is expected and says enough; anything else is a bug: traceback.
    log.warning("bookkeeping after a request failed: %s", exc,
                exc_info=None if isinstance(exc, PoolError) else exc)
