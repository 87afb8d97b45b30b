"""State shared through the pool file: cooldowns, quota cache, leases, dormant touches, decisions —
within one process, across connections, and across real processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tray.models import CandidateScore, Cooldown, Decision, Identity, TokenSet
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def add(store: Store, name: str) -> int:
    tokens = TokenSet(f"access-{name}", f"refresh-{name}", None, 5000.0)
    return store.save_login(Identity(name, "user"), tokens, None, None).id


def in_child(db_path: Path, code: str, now: float = 1000.0) -> str:
    """Run ``code`` in a separate Python process with ``store`` open on the same file."""
    prelude = (
        "import sys, json\n"
        "from tray.store.accounts import Store\n"
        "from tray.models import Cooldown\n"
        f"store = Store.open(sys.argv[1], clock=lambda: {now!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + code, str(db_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_cooldowns(store: Store, clock: FakeClock) -> None:
    a, b = add(store, "a"), add(store, "b")
    store.set_cooldown(Cooldown(a, 1060.0, 429, "rate limited", "retry-after"))
    store.set_cooldown(Cooldown(b, 900.0, 500, "server error", "default"))  # already over
    assert store.cooldowns() == {a: Cooldown(a, 1060.0, 429, "rate limited", "retry-after")}
    assert store.cooldowns(now=2000.0) == {}
    store.set_cooldown(Cooldown(a, 1200.0, 429, "again", "body"))  # replaces
    assert store.cooldowns()[a].until == 1200.0
    store.clear_cooldown(a)
    assert store.cooldowns() == {}


def test_quota_cache(store: Store) -> None:
    a, b = add(store, "a"), add(store, "b")
    assert store.usage(a) is None
    store.put_usage(a, '{"plan_type": "plus"}', 990.0)
    store.put_usage(b, "{}", 991.0)
    store.put_usage(a, '{"plan_type": "pro"}', 995.0)
    entry = store.usage(a)
    assert entry is not None and (entry.raw, entry.updated_at) == ('{"plan_type": "pro"}', 995.0)
    assert set(store.usages()) == {a, b}
    store.clear_usage(a)
    assert store.usage(a) is None and set(store.usages()) == {b}


def test_leases(store: Store, clock: FakeClock) -> None:
    assert store.acquire_lease("refresh:1", "me", ttl=30)
    assert not store.acquire_lease("refresh:1", "other", ttl=30)
    assert store.acquire_lease("refresh:1", "me", ttl=30)  # the holder renews
    assert store.acquire_lease("usage:1", "other", ttl=30)  # keys are independent
    store.release_lease("refresh:1", "other")  # not the holder: no effect
    assert not store.acquire_lease("refresh:1", "other", ttl=30)
    clock.now += 31
    assert store.acquire_lease("refresh:1", "other", ttl=30)  # expired: taken over
    store.release_lease("refresh:1", "other")
    assert store.acquire_lease("refresh:1", "third", ttl=30)


def test_dormant_touches_expire_and_the_next_touch_cleans_up(store: Store, clock: FakeClock) -> None:
    a, b = add(store, "a"), add(store, "b")
    store.touch_dormant(a, "rate.primary", 1800.0)
    store.touch_dormant(a, "rate.secondary", 1200.0)
    store.touch_dormant(b, "rate.primary", 1100.0)
    assert store.dormant_touches(1000.0) == {a: {"rate.primary", "rate.secondary"}, b: {"rate.primary"}}
    assert store.dormant_touches(1500.0) == {a: {"rate.primary"}}
    assert store._read("SELECT count(*) FROM dormant_touches")[0][0] == 3  # a read never writes
    clock.now = 1500.0
    store.touch_dormant(a, "rate.primary", 1900.0)  # a write (the background batch's) cleans up
    assert store._read("SELECT count(*) FROM dormant_touches")[0][0] == 1
    assert store.dormant_touches(1850.0) == {a: {"rate.primary"}}


def test_reading_dormant_touches_never_waits_on_the_write_lock(db_path: Path, clock: FakeClock) -> None:
    with Store.open(db_path, clock=clock, busy_timeout=0.2) as store:
        a = add(store, "a")
        store.touch_dormant(a, "rate.primary", 900.0)  # ran out before now (1000)
        store.touch_dormant(a, "rate.secondary", 1800.0)
        holder = sqlite3.connect(db_path, isolation_level=None)  # another process's writer
        holder.execute("BEGIN IMMEDIATE")
        try:
            assert store.dormant_touches(1000.0) == {a: {"rate.secondary"}}
        finally:
            holder.execute("ROLLBACK")
            holder.close()


def decision(n: int) -> Decision:
    return Decision(
        at=float(n), account_id=1, account_name="a", reason="higher score",
        scores=(CandidateScore(1, "a", 0.5), CandidateScore(2, "b", None)),
        fast_note="Fast: disabled (no data)", cache_age=3.0, status=200, latency_ms=12.5,
        route="/v1/responses",
    )


def test_decisions_newest_first_and_bounded(store: Store) -> None:
    store.decisions_kept = 10
    for n in range(25):
        store.record_decision(decision(n))
    got = store.decisions(100)
    assert [d.at for d in got] == [float(n) for n in range(24, 14, -1)]
    assert got[0] == decision(24)
    assert [d.at for d in store.decisions(3)] == [24.0, 23.0, 22.0]
    assert store._read("SELECT count(*) FROM decisions")[0][0] == 10


def test_a_second_connection_sees_every_shared_row(store: Store, db_path: Path) -> None:
    a = add(store, "a")
    with Store.open(db_path, clock=lambda: 1000.0) as other:
        other.set_cooldown(Cooldown(a, 1100.0, 429, "rate limited", "headers"))
        other.put_usage(a, "{}", 999.0)
        other.touch_dormant(a, "rate.primary", 2000.0)
        other.record_decision(decision(1))
    assert a in store.cooldowns()
    assert store.usage(a) is not None
    assert store.dormant_touches(1000.0) == {a: {"rate.primary"}}
    assert store.decisions(1) == [decision(1)]
    assert store.routable(1000.0) == []


def test_another_process_sees_cooldowns_and_quota(store: Store, db_path: Path) -> None:
    a = add(store, "a")
    in_child(db_path, (
        f"store.set_cooldown(Cooldown({a}, 1500.0, 429, 'rate limited', 'body'))\n"
        f"store.put_usage({a}, json.dumps({{'plan_type': 'pro'}}), 1000.0)\n"
    ))
    assert store.cooldowns()[a].source == "body"
    entry = store.usage(a)
    assert entry is not None and json.loads(entry.raw) == {"plan_type": "pro"}
    store.clear_cooldown(a)
    assert in_child(db_path, "print(sorted(store.cooldowns()))") == "[]"


def test_leases_are_exclusive_across_processes(store: Store, db_path: Path, clock: FakeClock) -> None:
    add(store, "a")
    assert store.acquire_lease("refresh:1", "parent", ttl=30)
    take = "print(store.acquire_lease('refresh:1', 'child', ttl=30))"
    assert in_child(db_path, take, now=1010.0) == "False"
    assert in_child(db_path, take, now=1031.0) == "True"  # the parent's lease ran out
    clock.now = 1032.0
    assert not store.acquire_lease("refresh:1", "parent", ttl=30)


def test_several_processes_write_at_once(store: Store, db_path: Path) -> None:
    ids = [add(store, n) for n in "abc"]
    code = (
        "import sys\n"
        "n = int(sys.argv[2])\n"
        "for i in range(40):\n"
        "    store.put_usage(n, str(i), float(i))\n"
        "    store.set_cooldown(Cooldown(n, 2000.0 + i, 429, 'x', 'default'))\n"
        "    store.acquire_lease(f'usage:{n}', f'p{n}', 30)\n"
        "print('ok')\n"
    )
    prelude = "import sys\nfrom tray.store.accounts import Store\nfrom tray.models import Cooldown\n"
    prelude += "store = Store.open(sys.argv[1], clock=lambda: 1000.0)\n"
    procs = [
        subprocess.Popen([sys.executable, "-c", prelude + code, str(db_path), str(n)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in ids
    ]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    assert {n: e.raw for n, e in store.usages().items()} == {n: "39" for n in ids}
    assert {n: c.until for n, c in store.cooldowns().items()} == {n: 2039.0 for n in ids}
