"""No blind spot after adding an account: a running proxy fetches a new account's quota at once,
whoever added it; the window asks for every account's quota when it opens; and while the quota is
not known the management API says whether a fetch is in flight or what failed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.apphost import running_engine
from tests.fakes.upstream_app import usage_knobs
from tests.support.proxykit import Pool, add_account
from tray.models import AccountState
from tray.store.accounts import Store


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_engine(["a"]) as running:
        yield running


@pytest.fixture
def api(pool: Pool) -> Iterator[httpx.Client]:
    engine = pool.engine
    with httpx.Client(base_url=engine.url + "/api", headers={"X-Codex-Pool-Token": engine.ui_token},
                      timeout=10) as client:
        yield client


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def added_elsewhere(pool: Pool, fake_id: str) -> int:
    """``codex-pool login`` in another process: a second connection to the pool file adds it."""
    other = Store.open(pool.engine.paths.db_file)
    try:
        return add_account(other, pool.auth, pool.upstream, fake_id).id
    finally:
        other.close()


def state(api: httpx.Client, account_id: int) -> dict[str, Any]:
    answer = api.get("/quota")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["accounts"][str(account_id)]
    return found


def test_a_new_account_is_fetched_at_once_without_any_request(pool: Pool) -> None:
    until(lambda: pool.engine.store.usage(pool.accounts["a"].id))  # the first account, at start
    new = added_elsewhere(pool, "c")
    entry = until(lambda: pool.engine.store.usage(new), timeout=10)
    assert json.loads(entry.raw)["account_id"] == "c"
    assert pool.upstream.codex_requests() == []  # no request had to go through it first
    assert [s.source for s in pool.engine.store.samples(0, baseline=False) if s.account_id == new] == [
        "usage", "usage"]  # its 5-hour and weekly windows, in the history


def test_quota_not_known_says_fetching_while_in_flight_then_what_failed(
        pool: Pool, api: httpx.Client) -> None:
    knobs = usage_knobs(pool.upstream)
    until(lambda: pool.engine.store.usage(pool.accounts["a"].id))
    knobs.delay = 30.0  # the usage endpoint hangs
    new = added_elsewhere(pool, "c")
    until(lambda: state(api, new)["fetching"])
    view = next(a for a in api.get("/accounts").json()["accounts"] if a["id"] == new)
    assert view["quota"]["known"] is False
    assert state(api, new)["error"] is None
    knobs.status, knobs.delay = 503, 0.0  # ... and then answers 503
    failed = until(lambda: (s := state(api, new))["error"] and not s["fetching"] and s)
    assert failed["error"] == "Usage request for c@example.com answered HTTP 503; trying again in 10 s"
    knobs.status = 0
    refreshed = api.post("/quota/refresh", json={"account_id": new})
    assert refreshed.status_code == 200  # within the backoff: the error stays until the retry works
    until(lambda: pool.engine.store.usage(new), timeout=20)  # the background retry, 10 s later
    assert until(lambda: state(api, new)["error"] is None)


def test_opening_the_window_fetches_every_enabled_account_not_fresh(pool: Pool, api: httpx.Client) -> None:
    store = pool.engine.store
    a = pool.accounts["a"].id
    until(lambda: store.usage(a))
    b = add_account(store, pool.auth, pool.upstream, "b").id
    with store.atomic():  # it is never in routing, not even for a moment
        off = add_account(store, pool.auth, pool.upstream, "off").id
        store.set_state(off, AccountState.DISABLED, "Turned off by you")
    until(lambda: store.usage(b))
    stale = time.time() - 120  # older than a minute: worth asking again
    for account_id in (a, b):
        entry = store.usage(account_id)
        assert entry is not None
        store.put_usage(account_id, entry.raw, stale)
    before = dict(pool.upstream.usage_calls)
    answer = api.post("/quota/refresh")
    assert answer.status_code == 200
    assert set(answer.json()["accounts"]) == {str(a), str(b), str(off)}
    until(lambda: all((e := store.usage(i)) is not None and e.updated_at > stale for i in (a, b)))
    assert pool.upstream.usage_calls["a"] == before.get("a", 0) + 1
    assert pool.upstream.usage_calls["b"] == before.get("b", 0) + 1
    assert pool.upstream.usage_calls.get("off", 0) == 0
    assert api.post("/quota/refresh", json={"account_id": 999}).status_code == 404
    assert api.post("/quota/refresh", json={"who": 1}).status_code == 400
