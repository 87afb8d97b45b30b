"""Token refresh benchmark: what the lease protocol costs.

    .venv/bin/python -m tests.bench.bench_refresh [--processes 4] [--callers 25] [--rounds 5] [--write-docs]

Against the fake auth server on loopback (no token delay), measures:

- ``ensure_fresh`` on a token that is not due (the per-request cost on the proxy's hot path);
- one refresh through the lease (acquire, re-read, token call, compare-and-set, release);
- ``--processes`` OS processes × ``--callers`` concurrent callers on one expired account: wall time
  until every caller holds the new token, and the number of refresh grants (must be 1).

``--write-docs`` puts the figures in ``docs/performance.md`` under "## Token refresh".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.bench.report import write_section
from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import serving
from tray.auth.oauth import OAuthClient
from tray.auth.refresh import Refresher
from tray.models import Identity
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]


def add_expired(store: Store, fake: FakeAuth) -> int:
    user = FakeUser(f"acc-{len(store.accounts())}", f"user-{len(store.accounts())}")
    tokens = fake.token_set(user, expires_in=-10)
    return store.save_login(Identity(user.account_id, user.subject), tokens, user.email, user.plan).id


async def single_process(store: Store, url: str, fake: FakeAuth, rounds: int) -> tuple[float, float]:
    async with httpx.AsyncClient() as http:
        refresher = Refresher(store, OAuthClient(http, url, time.time), None, time.time, None)
        fresh_id = add_expired(store, fake)
        account = await refresher.ensure_fresh(store.get(fresh_id))  # type: ignore[arg-type]
        await refresher.drain()
        start = time.perf_counter()
        for _ in range(10_000):
            await refresher.ensure_fresh(account)
        not_due = (time.perf_counter() - start) / 10_000
        samples = []
        for _ in range(rounds * 4):
            start = time.perf_counter()
            account = await refresher.ensure_fresh(account, force=True)
            await refresher.drain()  # the answer is handed out before it is stored: count the commit
            samples.append(time.perf_counter() - start)
    return not_due, statistics.median(samples)


def race(db: Path, url: str, account_id: int, processes: int, callers: int, tmp: Path) -> float:
    go = tmp / f"go-{account_id}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.fakes.refresh_worker", str(db), url, str(account_id), str(callers)]
    procs = [
        subprocess.Popen([*args, str(go)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    go.touch()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, proc.returncode
        results = json.loads(out.strip().splitlines()[-1])
        assert len(set(results)) == 1 and not results[0].startswith("error"), results
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--callers", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    opts = parser.parse_args()
    fake = FakeAuth()
    with tempfile.TemporaryDirectory() as tmp, serving(fake.app) as server:
        store = Store.open(Path(tmp) / "pool.db")
        not_due, one = asyncio.run(single_process(store, server.url, fake, opts.rounds))
        walls, grants = [], []
        for _ in range(opts.rounds):
            before = fake.refresh_grants
            account_id = add_expired(store, fake)
            walls.append(race(store.path, server.url, account_id, opts.processes, opts.callers, Path(tmp)))
            grants.append(fake.refresh_grants - before)
        store.close()
    body = (
        f"Fake auth server on loopback, no token delay; {os.cpu_count()} CPUs.\n\n"
        "| measure | result |\n| --- | --- |\n"
        f"| `ensure_fresh` on a token that is not due | {not_due * 1e6:.1f} µs |\n"
        f"| one refresh through the lease (median) | {one * 1e3:.1f} ms |\n"
        f"| {opts.processes} processes × {opts.callers} callers on one expired account, until all hold "
        f"the new token (median of {opts.rounds}) | {statistics.median(walls) * 1e3:.0f} ms |\n"
        f"| refresh grants per race | {', '.join(map(str, grants))} (reused: {fake.reuse_attempts}) |\n"
    )
    print(body)
    if opts.write_docs:
        write_section(ROOT / "docs" / "performance.md", "Token refresh", body)


if __name__ == "__main__":
    main()
