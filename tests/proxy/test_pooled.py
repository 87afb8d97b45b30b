"""What the client gets when no account served: pooled 429, 502, 503 (real SQLite store)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tray.models import Account, AccountState, Cooldown, Identity
from tray.proxy.pooled import Failure, pooled_error, soonest_reset
from tray.store.accounts import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "pool.db") as opened:
        yield opened


def add(store: Store, fake_id: str) -> Account:
    user = FakeUser(account_id=fake_id, subject=f"u-{fake_id}", email=f"{fake_id}@x.org")
    return store.save_login(Identity(fake_id, user.subject), FakeAuth().token_set(user), user.email, "plus")


def body(response: object) -> dict[str, object]:
    data: dict[str, object] = json.loads(response.body)  # type: ignore[attr-defined]
    return data


def test_empty_pool_says_how_to_add_an_account(store: Store) -> None:
    response, reason = pooled_error(store, time.time(), [])
    assert response.status_code == 503 and "codex-pool login" in str(body(response))
    assert reason == "no accounts in the pool"


def test_all_rate_limited_gives_429_with_the_soonest_reset(store: Store) -> None:
    now = time.time()
    a, b = add(store, "a"), add(store, "b")
    store.set_cooldown(Cooldown(a.id, now + 900, 429, "rate limited", "body"))
    store.set_cooldown(Cooldown(b.id, now + 300, 429, "rate limited", "headers"))
    assert soonest_reset(store, now) == pytest.approx(now + 300)
    response, reason = pooled_error(store, now, [Failure("usage limit", "a: HTTP 429", 429, now + 900)])
    assert response.status_code == 429 and reason == "pool exhausted"
    assert response.headers["retry-after"] == "300"
    error = body(response)["error"]
    assert isinstance(error, dict) and error["code"] == "pool_exhausted"
    assert error["resets_in_seconds"] == 300
    message = str(error["message"])
    assert message.startswith("codex-pool: every account is at its usage limit; the first resets at ")
    assert message.count("codex-pool") == 1  # the client shows it once, as the provider's own words
    assert message.endswith(" UTC.") and " s)" not in message  # a clock time, no ticking seconds


def test_blocked_usage_without_cooldown_still_gives_a_reset(store: Store) -> None:
    now = time.time()
    a = add(store, "a")
    payload = {"rate_limit": {"allowed": False, "limit_reached": True, "primary_window": {
        "used_percent": 100, "limit_window_seconds": 18000, "reset_after_seconds": 1200}}}
    store.put_usage(a.id, json.dumps(payload), now)
    store.set_cooldown(Cooldown(a.id, now + 60, 429, "rate limited", "default"))
    assert soonest_reset(store, now) == pytest.approx(now + 1200)


def test_unreachable_upstream_gives_502_with_the_last_reason(store: Store) -> None:
    add(store, "a")
    failures = [Failure("transport error", "a: ConnectError"), Failure("5xx", "b: HTTP 503", 503)]
    response, reason = pooled_error(store, time.time(), failures)
    assert response.status_code == 502 and reason == "upstream unreachable"
    assert "HTTP 503" in str(body(response))


def test_no_usable_account_gives_503(store: Store) -> None:
    a = add(store, "a")
    store.set_state(a.id, AccountState.NEEDS_LOGIN, "sign-in expired")
    response, reason = pooled_error(store, time.time(), [])
    assert response.status_code == 503 and reason == "no usable account"
    assert "need a new login" in str(body(response))
