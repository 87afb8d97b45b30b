"""The usage history in the pool file: one sample per window a minute unless it changed, 35 days,
bounded, shared by every process on the file, kept across restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.upstream_wire import usage_payload
from tests.support.clock import FakeClock
from tray.models import Identity, TokenSet, UsageSample
from tray.quota.usage import samples_from_payload
from tray.store.accounts import Store
from tray.store.history import HISTORY_DAYS

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
FIVE_H, WEEK = 18000.0, 604800.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def add(store: Store, name: str) -> int:
    return store.save_login(Identity(name, "user"), TokenSet("at", "rt", None, T0 + 3600), None, "plus").id


def sample(account: int, used: float, at: float, reset_at: float | None = T0 + 3600,
           span: float = FIVE_H, source: str = "headers") -> UsageSample:
    return UsageSample(account, span, used, reset_at, source, at)


def used(store: Store, since: float = 0.0) -> list[tuple[float, float]]:
    return [(s.at, s.used_percent) for s in store.samples(since, baseline=False)]


def test_an_unchanged_window_is_kept_at_most_once_a_minute(store: Store) -> None:
    a = add(store, "a")
    kept = [store.record_samples([sample(a, 10, T0 + dt)]) for dt in (0, 20, 59, 60, 90, 121)]
    assert kept == [1, 0, 0, 1, 0, 1]
    assert used(store) == [(T0, 10), (T0 + 60, 10), (T0 + 121, 10)]


def test_a_change_is_kept_at_once(store: Store) -> None:
    a = add(store, "a")
    for dt, value in ((0, 10), (5, 11), (6, 11), (7, 12)):
        store.record_samples([sample(a, value, T0 + dt)])
    assert used(store) == [(T0, 10), (T0 + 5, 11), (T0 + 7, 12)]
    # A new reset is a change too, even at the same percentage (the window started over).
    store.record_samples([sample(a, 12, T0 + 8, reset_at=T0 + 3 * 3600)])
    assert len(used(store)) == 4


def test_each_account_and_window_is_its_own_series(store: Store) -> None:
    a, b = add(store, "a"), add(store, "b")
    store.record_samples([sample(a, 10, T0), sample(a, 40, T0, span=WEEK), sample(b, 10, T0)])
    store.record_samples([sample(a, 10, T0 + 1), sample(a, 40, T0 + 1, span=WEEK), sample(b, 10, T0 + 1)])
    assert len(store.samples(0, baseline=False)) == 3
    assert {(s.account_id, s.window_seconds) for s in store.latest_samples()} == {
        (a, FIVE_H), (a, WEEK), (b, FIVE_H)}


def test_samples_older_than_35_days_go(store: Store, clock: FakeClock) -> None:
    a = add(store, "a")
    store.record_samples([sample(a, 10, T0)])
    clock.now = T0 + HISTORY_DAYS * 86400 + 1
    store.record_samples([sample(a, 20, clock.now)])
    assert used(store) == [(clock.now, 20)]


def test_the_history_is_bounded(store: Store) -> None:
    a = add(store, "a")
    store.samples_kept = 5
    for i in range(12):
        store.record_samples([sample(a, float(i), T0 + i)])
    assert [u for _, u in used(store)] == [7, 8, 9, 10, 11]


def test_a_range_starts_with_where_each_window_stood(store: Store) -> None:
    a, b = add(store, "a"), add(store, "b")
    store.record_samples([sample(a, 10, T0), sample(b, 30, T0)])
    store.record_samples([sample(a, 15, T0 + 100)])
    store.record_samples([sample(a, 20, T0 + 200)])
    found = store.samples(T0 + 150)
    assert [(s.account_id, s.used_percent) for s in found] == [(b, 30), (a, 15), (a, 20)]
    assert [(s.account_id, s.used_percent) for s in store.samples(T0 + 150, T0 + 180)] == [(b, 30), (a, 15)]


def test_removing_an_account_removes_its_history(store: Store) -> None:
    a = add(store, "a")
    store.record_samples([sample(a, 10, T0)])
    store.remove(a)
    assert store.samples(0) == [] and store.latest_samples() == []


def test_samples_survive_a_restart(db_path: Path, clock: FakeClock) -> None:
    with Store.open(db_path, clock=clock) as first:
        a = add(first, "a")
        first.record_samples([sample(a, 10, T0), sample(a, 20, T0 + 30)])
    with Store.open(db_path, clock=clock) as again:
        assert used(again) == [(T0, 10), (T0 + 30, 20)]


def test_every_process_on_the_pool_file_shares_the_history(store: Store, db_path: Path) -> None:
    a = add(store, "a")
    store.record_samples([sample(a, 10, T0)])
    code = (
        "import sys\n"
        "from tray.models import UsageSample\n"
        "from tray.store.accounts import Store\n"
        f"store = Store.open(sys.argv[1], clock=lambda: {T0 + 30!r})\n"
        f"same = UsageSample({a}, {FIVE_H}, 10.0, {T0 + 3600!r}, 'event', {T0 + 30!r})\n"
        f"more = UsageSample({a}, {FIVE_H}, 14.0, {T0 + 3600!r}, 'event', {T0 + 40!r})\n"
        "print(store.record_samples([same]), store.record_samples([more]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(db_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]  # the other process's sample a minute ago counts
    assert used(store) == [(T0, 10), (T0 + 40, 14)]


def test_a_usage_payload_gives_one_sample_per_named_window() -> None:
    payload = usage_payload(primary_used=42, primary_reset_after_s=600, secondary_used=130,
                            secondary_reset_after_s=86400, now=T0)
    found = samples_from_payload(7, payload, T0, "usage")
    assert [(s.window_seconds, s.used_percent, s.reset_at, s.source) for s in found] == [
        (FIVE_H, 42, T0 + 600, "usage"), (WEEK, 100, T0 + 86400, "usage")]  # used % is kept in 0-100
    unnamed = {"rate_limit": {"primary_window": {"used_percent": 5, "reset_after_seconds": 60}}}
    assert samples_from_payload(7, unnamed, T0, "event") == []
    assert samples_from_payload(7, json.dumps(payload), T0, "usage") == found
    assert samples_from_payload(7, None, T0, "usage") == []
