"""Rough per-call cost of the store's hot-path operations on a real file (run by hand:
``.venv/bin/python tests/bench/bench_store.py``). Not part of the test suite."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tray.models import CandidateScore, Cooldown, Decision, Identity, TokenSet
from tray.store.accounts import Store


def timed(label: str, n: int, fn: Callable[[int], object]) -> None:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    per = (time.perf_counter() - start) / n * 1e6
    print(f"{label:<34} {per:8.1f} µs/call  ({n} calls)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "pool.db")
        ids = [
            store.save_login(Identity(f"acc-{i}", "u"), TokenSet("a", "r", None, 1e10), None, "plus").id
            for i in range(10)
        ]
        raw = json.dumps({"plan_type": "plus", "rate_limit": {"primary_window": {"used_percent": 5}}})
        now = time.time()
        timed("routable(now), 10 accounts", 2000, lambda i: store.routable(now))
        timed("accounts()", 2000, lambda i: store.accounts())
        timed("usages()", 2000, lambda i: store.usages())
        timed("cooldowns()", 2000, lambda i: store.cooldowns())
        timed("dormant_touches(now)", 2000, lambda i: store.dormant_touches(now))
        timed("put_usage", 1000, lambda i: store.put_usage(ids[i % 10], raw, now))
        timed("set_cooldown", 1000,
              lambda i: store.set_cooldown(Cooldown(ids[i % 10], now + 60, 429, "x", "d")))
        timed("acquire_lease + release_lease", 1000,
              lambda i: (store.acquire_lease(f"k{i}", "me", 30), store.release_lease(f"k{i}", "me")))
        decision = Decision(now, ids[0], "a", "higher score", (CandidateScore(ids[0], "a", 0.5),), None,
                            1.0, 200, 10.0)
        timed("record_decision", 1000, lambda i: store.record_decision(decision))
        timed("move (dense renumber of 10)", 500, lambda i: store.move(ids[i % 10], (i * 7) % 10))
        store.close()


if __name__ == "__main__":
    main()
