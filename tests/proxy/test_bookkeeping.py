"""The bookkeeping writer (``Pipeline.background``) of a running proxy: the request path's writes go
through it, so a failover never waits on the pool file's write lock, and it goes on after a write
fails in an unexpected way (the other writes of its batch and the batches after it are written)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tests.support.proxykit import Pool, replies, running_pool, write_lock_held
from tray.models import Decision


def decision(reason: str) -> Decision:
    return Decision(at=time.time(), account_id=None, account_name=None, reason=reason, scores=(),
                    fast_note=None, cache_age=None, status=200, latency_ms=1.0, route="responses")


def queue(pool: Pool, *writes: Callable[[], object]) -> None:
    """Hand ``writes`` to the proxy's batch writer, on its event loop, as the request path does."""
    pipeline = pool.engine.pipeline
    assert pipeline is not None

    async def hand_over() -> None:
        for write in writes:
            pipeline.background(write)

    pool.engine.submit(hand_over()).result(10)


def recorded(pool: Pool, reason: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(d.reason == reason for d in pool.engine.store.decisions(50)):
            return True
        time.sleep(0.02)
    return False


def writer_busy_until(released: threading.Event, then: Callable[[], object] = lambda: None) -> tuple[
        threading.Event, Callable[[], object]]:
    """A write that keeps the writer busy until ``released``, then does ``then``; with it, the
    writes queued meanwhile are known to go together in the next batch."""
    started = threading.Event()

    def write() -> object:
        started.set()
        released.wait(10)
        return then()

    return started, write


def broken() -> None:
    raise RuntimeError("injected: a bookkeeping write with a bug")


def test_a_write_that_raises_loses_neither_its_batch_nor_the_writer() -> None:
    with running_pool(["a"]) as pool:
        store = pool.engine.store
        released = threading.Event()
        started, busy = writer_busy_until(released)
        queue(pool, busy)
        assert started.wait(10)
        queue(pool, broken, lambda: store.record_decision(decision("same batch as the broken write")))
        released.set()
        assert recorded(pool, "same batch as the broken write")
        queue(pool, lambda: store.record_decision(decision("a later batch")))
        assert recorded(pool, "a later batch")


def test_a_batch_that_raises_is_followed_by_the_next_one() -> None:
    with running_pool(["a"]) as pool:
        store = pool.engine.store
        released = threading.Event()
        started, busy_then_broken = writer_busy_until(released, broken)
        queue(pool, busy_then_broken)
        assert started.wait(10)
        queue(pool, lambda: store.record_decision(decision("queued while a write failed")))
        released.set()
        assert recorded(pool, "queued while a write failed")  # without any later request


def test_failovers_wait_on_no_write_lock_and_the_process_keeps_its_verdicts() -> None:
    with running_pool(["a", "b", "c"]) as pool:
        pool.upstream.script("a", replies.usage_limit(resets_in=900))  # cooldown + quota cache
        pool.upstream.script("b", replies.server_error(502))  # a short cooldown
        with write_lock_held(pool.engine.paths.db_file) as holder:
            first = pool.post()
            assert first.status_code == 200, first.text
            assert pool.served_by(first) == "c"
            # Until the writes are in, this process keeps a and b out on its own.
            assert pool.served_by(pool.post()) == "c"
            assert holder.poll() is None  # all while the other process held the lock
        assert len(pool.upstream.codex_requests("a")) == 1
        assert len(pool.upstream.codex_requests("b")) == 1
