"""A usage API that is slow or failing never holds requests up: a request waits a moment at most
for a refetch, a failed account is retried with backoff in the background and ranked as unknown
meanwhile (fake backend over loopback, real pool files)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth
from tests.fakes.runner import ServerThread, serving
from tests.fakes.upstream import FakeUpstream, make_chatgpt
from tests.fakes.upstream_app import usage_knobs
from tests.fakes.upstream_wire import usage_payload
from tests.support.proxykit import CODEX_HEADERS, Pool, add_account, codex_body, running_pool
from tray.models import Account
from tray.quota.service import QuotaService
from tray.store.accounts import Store

# The proxy's own usage call gives up after 15 s; a request in these tests that waits for usage at
# all would take far longer than this client allows, however loaded the machine.
CLIENT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def reset_passed(store: Store, account: Account, now: float) -> None:
    """Cache an entry, observed 4 min ago, whose 5 h window's reset passed 3 min ago: the proxy must
    not use it, and the poller would revalidate it."""
    payload = usage_payload(primary_used=50.0, primary_reset_after_s=60, now=now - 240)
    store.put_usage(account.id, json.dumps(payload), now - 240)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def usage_calls(upstream: FakeUpstream) -> int:
    return sum(upstream.usage_calls.values())


def client(pool: Pool) -> httpx.Client:
    return httpx.Client(base_url=pool.url, headers={"Authorization": f"Bearer {pool.engine.api_key}"},
                        timeout=CLIENT_TIMEOUT, trust_env=False)


def post(client: httpx.Client) -> httpx.Response:
    return client.post("/backend-api/codex/responses", json=codex_body(), headers=CODEX_HEADERS)


def test_a_hanging_failing_usage_endpoint_holds_no_request_up() -> None:
    with running_pool(["a", "b"]) as pool:
        knobs = usage_knobs(pool.upstream)
        knobs.delay, knobs.status = 120.0, 500  # the usage API hangs, then fails
        now = time.time()
        for fid in ("a", "b"):
            reset_passed(pool.engine.store, pool.accounts[fid], now)
        with client(pool) as http:
            for _ in range(8):
                response = post(http)
                assert response.status_code == 200, response.text
        # Every answer went out while the usage calls were still hanging, and the calls in flight
        # were shared: one per account, not one per request.
        assert knobs.answered == 0
        assert usage_calls(pool.upstream) == 2
        knobs.delay = 0.0  # the hanging calls now fail
        wait_for(lambda: knobs.answered == 2, "the usage calls to fail")
        with client(pool) as http:
            for _ in range(8):
                assert post(http).status_code == 200
        # After the failure each account is retried in the background after a backoff of seconds,
        # never by each request (the exact count is the next test's subject).
        assert usage_calls(pool.upstream) <= 4


def test_a_usage_endpoint_failing_fast_is_not_called_again_by_requests() -> None:
    with running_pool(["a", "b"]) as pool:
        usage_knobs(pool.upstream).status = 500
        now = time.time()
        for fid in ("a", "b"):
            reset_passed(pool.engine.store, pool.accounts[fid], now)
        with client(pool) as http:
            served = {pool.served_by(post(http)) for _ in range(8)}
        assert served == {"a"}  # both unknown: ranked neutral, priority decides
        assert usage_calls(pool.upstream) == 2


# ---- the quota service alone: backoff and the background retry ------------------------------------


class World:
    def __init__(self, tmp: Path, server: ServerThread, upstream: FakeUpstream, auth: FakeAuth) -> None:
        self.server, self.upstream = server, upstream
        self.store = Store.open(tmp / "pool.db")
        self.a = add_account(self.store, auth, upstream, "a")

    def service(self, http: httpx.AsyncClient, *, retry_first: float, retry_max: float = 300.0
                ) -> QuotaService:
        return QuotaService(self.store, http, f"{self.server.url}/backend-api", clock=time.time,
                            retry_first=retry_first, retry_max=retry_max)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    chatgpt = make_chatgpt()
    assert isinstance(chatgpt.auth, FakeAuth)
    with serving(chatgpt.app) as server:
        w = World(tmp_path, server, chatgpt.upstream, chatgpt.auth)
        yield w
        w.store.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_a_failed_account_is_ranked_unknown_and_not_refetched_during_its_backoff(world: World) -> None:
    usage_knobs(world.upstream).status = 503
    reset_passed(world.store, world.a, time.time())

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http, retry_first=600.0)
            view = (await service.prepare([world.a], time.time()))[world.a.id]
            await until(lambda: usage_knobs(world.upstream).answered == 1, "the failed fetch")
            service.touch([world.a], time.time())
            for _ in range(5):
                view = (await service.prepare([world.a], time.time()))[world.a.id]
                assert not view.usable  # unknown: neither the old numbers nor a guess
                await service.sweep()  # the poller waits for the backoff too
            assert world.upstream.usage_calls["a"] == 1
            await service.stop()

    asyncio.run(go())


def test_after_a_failure_usage_is_retried_in_the_background_until_it_answers(world: World) -> None:
    knobs = usage_knobs(world.upstream)
    knobs.status = 500
    reset_passed(world.store, world.a, time.time())

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http, retry_first=0.05, retry_max=0.2)
            await service.prepare([world.a], time.time())
            await until(lambda: world.upstream.usage_calls["a"] >= 3, "two retries")
            knobs.status = 0  # the usage API is back; no request comes in
            await until(lambda: service.view(world.a.id, time.time()).usable, "the retried fetch")
            calls = world.upstream.usage_calls["a"]
            await asyncio.sleep(0.5)  # more than the longest backoff: no more retries once it worked
            assert world.upstream.usage_calls["a"] == calls
            await service.stop()

    asyncio.run(go())
