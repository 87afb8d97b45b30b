"""The quota service's background poller survives unexpected errors, and live signals observed at
once by two connections to one pool file are both kept (real SQLite files, fake backend)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import ServerThread, serving
from tests.fakes.upstream import FakeChatGPT, make_chatgpt
from tests.support.proxykit import add_account
from tray.models import Account, Identity
from tray.quota.cache import QuotaCache
from tray.quota.service import QuotaService
from tray.store.accounts import Store


class FlakyReads(Store):
    """A read connection whose next ``routable`` call fails with an error nobody planned for."""

    failures = 1

    def routable(self, now: float) -> list[Account]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("injected: an unexpected error in the poller's pass")
        return super().routable(now)


@pytest.fixture
def chatgpt_server() -> Iterator[tuple[ServerThread, FakeChatGPT]]:
    chatgpt = make_chatgpt()
    with serving(chatgpt.app) as server:
        yield server, chatgpt


def test_the_poller_goes_on_after_an_unexpected_error(
    tmp_path: Path, chatgpt_server: tuple[ServerThread, FakeChatGPT]
) -> None:
    server, chatgpt = chatgpt_server
    auth, upstream = chatgpt.auth, chatgpt.upstream
    assert isinstance(auth, FakeAuth)
    with Store.open(tmp_path / "pool.db") as store, FlakyReads.open(tmp_path / "pool.db") as reads:
        a = add_account(store, auth, upstream, "a")

        async def go() -> None:
            async with httpx.AsyncClient() as http:
                service = QuotaService(store, http, f"{server.url}/backend-api", clock=time.time,
                                       reads=reads, poll_interval=0.05)
                service.touch([a], time.time())  # a served a request: the poller keeps it current
                service.start()
                deadline = time.monotonic() + 20
                while store.usage(a.id) is None:
                    assert time.monotonic() < deadline, "the poller stopped after the error"
                    await asyncio.sleep(0.02)
                await service.stop()

        asyncio.run(go())
        assert reads.failures == 0  # the error did happen, and the next pass ran
        assert upstream.usage_calls["a"] >= 1


def headers(slot: str, minutes: int, used: int) -> dict[str, str]:
    return {f"x-codex-{slot}-used-percent": str(used), f"x-codex-{slot}-window-minutes": str(minutes),
            f"x-codex-{slot}-reset-after-seconds": str(minutes * 30)}


def test_two_connections_observing_at_once_keep_both_signals(tmp_path: Path) -> None:
    """Two observers (two processes' connections) merge into the same cached entry while a third
    connection holds the write lock; when it lets go, neither merge may overwrite the other."""
    db = tmp_path / "pool.db"
    auth = make_chatgpt().auth
    assert isinstance(auth, FakeAuth)
    # A generous busy timeout: the observers wait on the lock only as long as this test holds it.
    one, two = Store.open(db, busy_timeout=60), Store.open(db, busy_timeout=60)
    user = FakeUser(account_id="a", subject="user-a", email="a@example.com")
    account = one.save_login(Identity("a", user.subject), auth.token_set(user), user.email, "plus")
    waiting = {id(one): threading.Event(), id(two): threading.Event()}
    for store in (one, two):
        # The observer is at the lock: its write transaction has started (SQLite traces a statement
        # as it begins, before it waits for the lock).
        event = waiting[id(store)]
        store._conn.set_trace_callback(
            lambda sql, e=event: e.set() if sql.startswith("BEGIN IMMEDIATE") else None)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        caches = [QuotaCache(s, clock=time.time) for s in (one, two)]
        signals = (headers("primary", 300, 30), headers("secondary", 10080, 70))
        threads = [threading.Thread(target=cache.observe_headers, args=(account, signal))
                   for cache, signal in zip(caches, signals, strict=True)]
        for t in threads:
            t.start()
        for event in waiting.values():
            assert event.wait(20)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for t in threads:
        t.join(30)
    entry = one.usage(account.id)
    assert entry is not None
    limit = json.loads(entry.raw)["rate_limit"]
    assert limit["primary_window"]["used_percent"] == 30
    assert limit["secondary_window"]["used_percent"] == 70
    one.close()
    two.close()

