"""The quota service against the fake backend over loopback and real SQLite files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth
from tests.fakes.runner import ServerThread, serving
from tests.fakes.upstream import FakeUpstream, make_chatgpt, replies
from tests.support.clock import FakeClock
from tests.support.proxykit import add_account
from tray.auth.oauth import OAuthClient
from tray.auth.refresh import Refresher
from tray.models import Account, Event, QuotaLow
from tray.quota.service import QuotaService
from tray.quota.usage import UsageView
from tray.store.accounts import Store


def usage(used: float) -> dict[str, float]:
    return {"primary_used": used, "primary_reset_after_s": 9000}


class World:
    def __init__(self, tmp: Path, server: ServerThread, upstream: FakeUpstream, auth: FakeAuth) -> None:
        self.db = tmp / "pool.db"
        self.server = server
        self.upstream = upstream
        self.clock = FakeClock()
        self.store = Store.open(self.db, self.clock)
        self.auth = auth
        self.events: list[Event] = []
        self.a = add_account(self.store, auth, upstream, "a", usage(40.0))
        self.b = add_account(self.store, auth, upstream, "b", usage(10.0))

    def service(self, http: httpx.AsyncClient, store: Store | None = None, **kw: float) -> QuotaService:
        return QuotaService(store or self.store, http, f"{self.server.url}/backend-api",
                            clock=self.clock, events=self.events.append, **kw)  # type: ignore[arg-type]

    def cache(self, account: Account, payload: dict[str, object], at: float) -> None:
        self.store.put_usage(account.id, json.dumps(payload), at)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    chatgpt = make_chatgpt()
    assert isinstance(chatgpt.auth, FakeAuth)
    with serving(chatgpt.app) as server:
        w = World(tmp_path, server, chatgpt.upstream, chatgpt.auth)
        yield w
        w.store.close()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_concurrent_loads_in_one_process_share_one_fetch(world: World) -> None:
    world.upstream.script_usage("a", replies.slow(0.3))

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http)
            views = await asyncio.gather(*(service.load(world.a) for _ in range(5)))
            assert all(v.freshness == "fresh" for v in views)
            assert service.fetches == 1

    run(go())
    assert world.upstream.usage_calls["a"] == 1
    entry = world.store.usage(world.a.id)
    assert entry is not None and json.loads(entry.raw)["rate_limit"]["primary_window"]["used_percent"] == 40.0


def test_two_processes_fetch_once_and_the_waiter_rereads(world: World) -> None:
    world.upstream.script_usage("a", replies.slow(0.5), replies.slow(0.5))
    other = Store.open(world.db, world.clock)

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            one, two = world.service(http), world.service(http, other, wait_step=0.05)
            first, second = await asyncio.gather(one.load(world.a), two.load(world.a))
            assert first.usable and second.usable
            assert one.fetches + two.fetches == 1

    try:
        run(go())
    finally:
        other.close()
    assert world.upstream.usage_calls["a"] == 1


def test_expired_entry_is_refetched_before_ranking_stale_one_is_used_and_warmed(world: World) -> None:
    now = world.clock.now
    payload = world.upstream.usage_of("a")
    # a: its 5 h window's reset deadline passed → must be refetched before routing uses it.
    payload["rate_limit"]["primary_window"]["reset_after_seconds"] = 60
    world.cache(world.a, payload, now - 120)
    # b: two minutes old → stale but usable; warmed in the background.
    world.cache(world.b, world.upstream.usage_of("b"), now - 120)

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http)
            views = await service.prepare([world.a, world.b], now)
            assert views[world.a.id].freshness == "fresh"
            assert world.upstream.usage_calls["a"] == 1
            assert views[world.b.id].freshness == "stale"
            await asyncio.gather(*service._background)
            assert world.upstream.usage_calls["b"] == 1

    run(go())


def test_cold_cache_does_not_block_and_warms(world: World) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http)
            views = await service.prepare([world.a, world.b], world.clock.now)
            assert all(v.freshness == "missing" for v in views.values())
            await asyncio.gather(*service._background)
            assert service.view(world.a.id, world.clock.now).freshness == "fresh"

    run(go())


def test_just_reset_window_refetches_at_most_once_a_minute(world: World) -> None:
    payload = world.upstream.usage_of("a")
    payload["rate_limit"]["primary_window"]["reset_after_seconds"] = 0
    world.cache(world.a, payload, world.clock.now)

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http)
            for _ in range(3):
                await service.prepare([world.a], world.clock.now)
                await asyncio.gather(*service._background)
                # upstream keeps saying 0 s: still no refetch storm
                world.cache(world.a, payload, world.clock.now)
            assert world.upstream.usage_calls["a"] == 1
            world.clock.now += 61
            await service.prepare([world.a], world.clock.now)
            await asyncio.gather(*service._background)
            assert world.upstream.usage_calls["a"] == 2

    run(go())


def test_poller_revalidates_active_accounts_first_and_idle_ones_at_a_slow_pace(world: World) -> None:
    now = world.clock.now
    world.cache(world.a, world.upstream.usage_of("a"), now - 200)
    world.cache(world.b, world.upstream.usage_of("b"), now - 200)

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http)
            service.touch([world.a], now)
            assert await service.sweep() == 1
            assert world.upstream.usage_calls == {"a": 1}
            # Entries under 3 min old are left alone; accounts idle for 5 min stop being polled.
            assert await service.sweep() == 0
            world.clock.now += 301
            assert await service.sweep() == 0
            assert world.upstream.usage_calls == {"a": 1}
            world.clock.now += 100  # b's numbers are over 10 min old now, a's not yet
            assert await service.sweep() == 1
            assert world.upstream.usage_calls == {"a": 1, "b": 1}

    run(go())


def test_live_signals_merge_into_the_cache(world: World) -> None:
    world.cache(world.a, world.upstream.usage_of("a"), world.clock.now - 30)

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http)
            service.observe_headers(world.a, {
                "x-codex-primary-used-percent": "55", "x-codex-primary-window-minutes": "300",
                "x-codex-primary-reset-after-seconds": "5000"})
            usage = service.view(world.a.id, world.clock.now).usage
            assert usage is not None and usage.primary is not None and usage.primary.used_percent == 55
            assert usage.secondary is not None  # kept from the fetched payload
            service.observe_event(world.a, {"type": "codex.rate_limits", "rate_limits": {
                "primary": {"used_percent": 60, "window_minutes": 300, "reset_at": world.clock.now + 4000}}})
            usage = service.view(world.a.id, world.clock.now).usage
            assert usage is not None and usage.primary is not None and usage.primary.used_percent == 60
            body = json.dumps({"error": {"type": "usage_limit_reached", "resets_in_seconds": 600}}).encode()
            service.observe_429(world.a, {}, body)
            usage = service.view(world.a.id, world.clock.now).usage
            assert usage is not None and usage.blocked

    run(go())
    assert world.upstream.usage_calls["a"] == 0


def test_quota_low_fires_once_per_episode_and_plan_is_kept_current(world: World) -> None:
    world.upstream.set_usage("b", primary_used=95.0, primary_reset_after_s=9000, plan_type="pro")

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            service = world.service(http)
            await service.load(world.b)
            service.observe_headers(world.b, {"x-codex-primary-used-percent": "97",
                                              "x-codex-primary-window-minutes": "300"})
            low = [e for e in world.events if isinstance(e, QuotaLow)]
            assert len(low) == 1 and low[0].account_id == world.b.id
            assert low[0].percent_left == pytest.approx(5)
            service.observe_headers(world.b, {"x-codex-primary-used-percent": "20",
                                              "x-codex-primary-window-minutes": "300",
                                              "x-codex-secondary-used-percent": "20",
                                              "x-codex-secondary-window-minutes": "10080"})
            service.observe_headers(world.b, {"x-codex-primary-used-percent": "96",
                                              "x-codex-primary-window-minutes": "300"})
            assert len([e for e in world.events if isinstance(e, QuotaLow)]) == 2

    run(go())
    account = world.store.get(world.b.id)
    assert account is not None and account.plan == "pro"


def test_failed_usage_fetch_caches_nothing_and_raises_nothing(world: World) -> None:
    world.upstream.script_usage("a", replies.server_error(500))

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            view = await world.service(http).load(world.a)
            assert view.freshness == "missing"

    run(go())
    assert world.store.usage(world.a.id) is None


def usage_requests(world: World, fake_id: str) -> int:
    return sum(1 for r in world.upstream.requests if r.path.endswith("/wham/usage")
               and r.headers.get("chatgpt-account-id") == fake_id)


def with_refresher(world: World, action: Callable[[QuotaService], Awaitable[object]]) -> object:
    async def go() -> object:
        async with httpx.AsyncClient() as http:
            oauth = OAuthClient(http, world.server.url, world.clock)
            refresher = Refresher(world.store, oauth, None, world.clock, None, poll_interval=0.02)
            service = QuotaService(world.store, http, f"{world.server.url}/backend-api",
                                   clock=world.clock, refresher=refresher)
            return await action(service)

    return run(go())


def test_an_expired_token_is_refreshed_before_its_usage_is_fetched(world: World) -> None:
    c = add_account(world.store, world.auth, world.upstream, "c", usage(25.0), expires_in=-60)
    refused_before = world.upstream.outcomes["401"]

    view = with_refresher(world, lambda service: service.load(c))

    assert isinstance(view, UsageView) and view.usable
    assert world.auth.refresh_grants == 1
    assert usage_requests(world, "c") == 1
    assert world.upstream.outcomes["401"] == refused_before  # upstream never saw the expired token
    stored = world.store.get(c.id)
    assert stored is not None and stored.tokens.access_token != c.tokens.access_token


def test_a_401_on_usage_gets_one_forced_refresh_and_one_retry(world: World) -> None:
    world.upstream.revoke_token(world.a.tokens.access_token)  # e.g. upstream invalidated the token early

    view = with_refresher(world, lambda service: service.load(world.a))

    assert isinstance(view, UsageView) and view.usable
    assert world.auth.refresh_grants == 1
    assert usage_requests(world, "a") == 2


def test_a_401_that_a_refresh_cannot_cure_means_no_data_and_no_401_loop(world: World) -> None:
    world.upstream.revoke_token(world.a.tokens.access_token)
    world.auth.fail_all_refreshes = (503, {"error": "temporarily_unavailable"})

    async def poll(service: QuotaService) -> list[UsageView]:
        return [await service.load(world.a, force=True) for _ in range(5)]

    views = with_refresher(world, poll)

    assert isinstance(views, list) and not any(v.usable for v in views)
    assert world.auth.refresh_attempts == 1
    assert usage_requests(world, "a") == 1
    assert world.store.usage(world.a.id) is None
