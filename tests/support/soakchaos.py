"""What goes wrong around the soak's proxies while the load runs: access tokens rejected upstream and
one login revoked (:func:`token_chaos`), a slow, sometimes failing usage endpoint with windows that
keep resetting (:func:`usage_chaos`), and a third process taking the pool file's write lock at
random moments (:func:`lock_holder`, ``tests/fakes/locker.py``)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from tests.fakes.auth_server import FakeAuth
from tests.fakes.faults import UsageFaults
from tests.fakes.upstream import FakeUpstream
from tests.support.soakload import Load
from tests.support.soakreport import SoakReport, SoakSettings
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]


async def token_chaos(load: Load, settings: SoakSettings, auth: FakeAuth, upstream: FakeUpstream,
                      store: Store, ids: dict[str, int], report: SoakReport,
                      procs: list[psutil.Process]) -> None:
    """While the load runs: now and then upstream rejects an account's current access token (the
    proxy must refresh on the 401), and a quarter of the way in one account's login is revoked for
    good (its refresh token answers ``invalid_grant``, its access tokens 401). Also samples each
    serve process's RSS every tenth of the run."""
    rng = random.Random(settings.seed + 1)
    fake_ids = sorted(ids)
    last = 0
    seen: dict[str, float] = {}  # access token -> when the chaos first saw it in the store
    tenth = max(1, settings.requests // 10)
    while load.done < settings.requests:
        await asyncio.sleep(0.05)
        for proc, figures in zip(procs, report.processes, strict=True):
            if load.done >= tenth * (len(figures.rss_curve) + 1):
                figures.rss_curve.append(proc.memory_info().rss)
        if settings.revoke and report.revoked is None and load.done >= settings.requests // 4:
            report.revoked = fake_ids[0]  # the first in priority: it is sure to be tried again
            auth.revoke_account(fake_ids[0])
            for token, owner in list(upstream.tokens.items()):
                if owner == fake_ids[0]:
                    upstream.revoke_token(token)
        if load.done - last >= settings.invalidate_every:
            account = await asyncio.to_thread(store.get, ids[rng.choice(fake_ids[1:])])
            token = account.tokens.access_token if account is not None else ""
            first_seen = seen.setdefault(token, time.monotonic())
            # Only a token that has been in use a while: one rejected right after it was issued is a
            # real "still 401 after a refresh", which rightly needs a new login.
            if token and time.monotonic() - first_seen >= 2.0:
                last = load.done
                upstream.revoke_token(token)
                report.invalidated += 1


async def usage_chaos(load: Load, settings: SoakSettings, upstream: FakeUpstream, fake_ids: list[str],
                      faults: UsageFaults) -> None:
    """While the load runs: every ``usage_every`` seconds each account's short window is set partly
    used with a reset 2-6 s away (so the proxies' cached windows keep passing their reset, which
    makes them refetch usage), and every account always has usage replies queued from ``faults``
    (slow, failing or both)."""
    rng = random.Random(settings.seed + 2)
    next_round = 0.0
    while load.done < settings.requests:
        now = time.monotonic()
        if now >= next_round:
            next_round = now + settings.usage_every
            for fid in fake_ids:
                upstream.set_usage(fid, primary_used=rng.uniform(10, 60),
                                   primary_reset_after_s=rng.uniform(2, 6), secondary_used=rng.uniform(0, 30))
        for fid in fake_ids:
            while len(upstream.accounts[fid].usage_script) < 2:
                upstream.script_usage(fid, faults.pick())
        await asyncio.sleep(0.05)


def calm_usage(upstream: FakeUpstream, fake_ids: list[str]) -> None:
    """Usage answers promptly again (queued fault replies dropped)."""
    for fid in fake_ids:
        upstream.accounts[fid].usage_script.clear()


@contextmanager
def lock_holder(db: Path, settings: SoakSettings, holds: list[float]) -> Iterator[None]:
    """Run ``tests/fakes/locker.py`` on ``db`` for the duration; each finished hold's length is
    appended to ``holds``. On leaving, the locker releases any lock it holds and stops."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.locker", str(db), "--random", "--seed", str(settings.seed),
         "--min", str(settings.lock_span[0]), "--max", str(settings.lock_span[1]),
         "--gap-min", str(settings.lock_gap[0]), "--gap-max", str(settings.lock_gap[1])],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("the lock holder did not start")

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("held "):
                holds.append(float(line.split()[1]))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield
    finally:
        proc.stdin.close()  # the locker stops at the end of its stdin
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
        proc.stdout.close()
