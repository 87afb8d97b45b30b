"""Quota is known without any request going through the proxy: a real engine in front of the fake
chatgpt.com, counting its usage calls. It is fetched when the app starts (where it is not fresh),
when an account comes back after a new sign-in (however young its entry), when the window opens
(once, however often it asks), and every account in routing is polled at a slow pace; a window reset
that passed without traffic is checked again, so "resetting" does not last."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.proxykit import Pool, add_account, running_pool
from tray.engine import Engine
from tray.models import AccountState
from tray.paths import resolve_paths
from tray.quota.usage import FRESH_SECONDS, IDLE_REVALIDATE_AGE
from tray.store.accounts import Store


class Clock:
    """The pool's clock (engine and fake backend): real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def settled(pool: Pool) -> None:
    """Every enabled account has an entry and no usage fetch is in flight."""
    quota = pool.engine.quota
    assert quota is not None
    store = pool.engine.store
    until(lambda: all(store.usage(a.id) for a in store.accounts() if a.state is AccountState.ENABLED))
    until(lambda: not any(quota.fetching(a.id) for a in pool.engine.store.accounts()))


def on_loop(pool: Pool, step: Callable[[], Any]) -> Any:
    """Run ``step`` on the proxy's event loop (where the watcher and poller run) and wait for it."""
    async def run() -> Any:
        found = step()
        return await found if hasattr(found, "__await__") else found

    return pool.engine.submit(run()).result(20)


def api(engine: Engine) -> httpx.Client:
    return httpx.Client(base_url=engine.url + "/api", headers={"X-Codex-Pool-Token": engine.ui_token},
                        timeout=10)


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_pool(["a", "b", "off"]) as running:
        running.engine.store.set_state(running.accounts["off"].id, AccountState.DISABLED, "off")
        yield running


def test_a_restart_fetches_every_enabled_account_whose_quota_is_not_fresh(pool: Pool) -> None:
    settled(pool)
    store = pool.engine.store
    a = pool.accounts["a"].id
    for fake_id in ("a", "off"):  # a's and off's numbers are two minutes old; b's are fresh
        raw = json.dumps(pool.upstream.usage_of(fake_id))
        store.put_usage(pool.accounts[fake_id].id, raw, time.time() - 120)
    before = dict(pool.upstream.usage_calls)
    pool.engine.stop()  # quit ...
    pool.engine = Engine(resolve_paths(), port=0, import_primary=False)
    pool.engine.start()  # ... and start again: no request goes through it
    until(lambda: (e := pool.engine.store.usage(a)) is not None and e.updated_at > time.time() - 60)
    settled(pool)
    assert pool.upstream.usage_calls["a"] == before["a"] + 1
    assert pool.upstream.usage_calls["b"] == before["b"]  # fresh: not asked again
    assert pool.upstream.usage_calls["off"] == before.get("off", 0)  # disabled: never asked
    assert pool.upstream.codex_requests() == []


def test_opening_the_window_twice_asks_upstream_once(pool: Pool) -> None:
    settled(pool)
    store = pool.engine.store
    a = pool.accounts["a"].id
    entry = store.usage(a)
    assert entry is not None
    store.put_usage(a, entry.raw, time.time() - 2 * FRESH_SECONDS)
    before = pool.upstream.usage_calls["a"]
    with api(pool.engine) as client:
        for _ in range(3):  # the window opened, closed and opened again
            assert client.post("/quota/refresh").status_code == 200
        until(lambda: (e := store.usage(a)) is not None and e.updated_at > time.time() - 60)
        settled(pool)
        assert client.post("/quota/refresh").status_code == 200
    settled(pool)
    assert pool.upstream.usage_calls["a"] == before + 1


def test_signing_in_again_fetches_the_account_at_once_though_its_entry_is_young(pool: Pool) -> None:
    settled(pool)
    quota = pool.engine.quota
    assert quota is not None
    store = pool.engine.store
    b = pool.accounts["b"].id
    store.set_state(b, AccountState.NEEDS_LOGIN, "refresh_token_reused")
    on_loop(pool, quota.sweep_newcomers)  # the watcher has seen it leave
    before = pool.upstream.usage_calls["b"]
    written = store.usage(b)
    assert written is not None and written.updated_at > time.time() - FRESH_SECONDS  # young
    other = Store.open(pool.engine.paths.db_file)  # `codex-pool login` in another process
    try:
        add_account(other, pool.auth, pool.upstream, "b")
    finally:
        other.close()
    until(lambda: pool.upstream.usage_calls["b"] == before + 1)
    until(lambda: (e := store.usage(b)) is not None and e.updated_at > written.updated_at)
    assert store.get(b).state is AccountState.ENABLED  # type: ignore[union-attr]


def test_every_account_in_routing_is_polled_at_a_slow_pace(pool_home: Path) -> None:
    clock = Clock()
    with running_pool(["a", "b"], clock=clock) as pool:
        settled(pool)
        quota = pool.engine.quota
        assert quota is not None
        before = dict(pool.upstream.usage_calls)
        assert on_loop(pool, quota.sweep) == 0  # nobody used either; their numbers are young
        clock.offset += IDLE_REVALIDATE_AGE + 1  # ten quiet minutes later
        assert on_loop(pool, quota.sweep) == 2
        assert pool.upstream.usage_calls == {"a": before["a"] + 1, "b": before["b"] + 1}
        assert on_loop(pool, quota.sweep) == 0  # and then not again for a while
        assert pool.upstream.codex_requests() == []


def test_a_reset_that_passed_without_traffic_is_checked_again(pool_home: Path) -> None:
    clock = Clock()
    with running_pool(["a"], clock=clock) as pool:
        settled(pool)
        pool.upstream.set_usage("a", primary_used=100.0, primary_reset_after_s=120)
        pool.prime_usage("a")
        quota = pool.engine.quota
        assert quota is not None
        a = pool.accounts["a"].id
        before = pool.upstream.usage_calls["a"]
        clock.offset += 180  # the 5-hour window reset a minute ago; no request came since
        assert quota.view(a, clock()).why == "reset passed"
        pool.upstream.set_usage("a", primary_used=0.0, primary_reset_after_s=18000)
        assert on_loop(pool, quota.sweep) == 1
        until(lambda: quota.view(a, clock()).usable)
        assert pool.upstream.usage_calls["a"] == before + 1
        usage = quota.view(a, clock()).usage
        assert usage is not None and usage.primary is not None and usage.primary.used_percent == 0.0
