"""Soak run: many requests from concurrent clients through two ``codex-pool serve`` processes that
share one pool, with upstream and token-endpoint faults on and short-lived access tokens, so that
refreshes, failovers and cross-process races happen all the time; and around them a slow,
sometimes failing usage endpoint whose windows keep resetting, and a third process that takes the
pool file's write lock at random moments for 0.5-8 s (every third time past the 5 s busy timeout).

    python tests/support/soak.py                   # 1,000 requests (CI runs it: tests/e2e/test_soak.py)
    python tests/support/soak.py --requests 10000  # the long version

It prints one line of figures per measure and exits 1 when any check fails. What it checks (see
``SoakReport.problems`` in ``tests/support/soakreport.py``): every request answered within its timeout with
a complete stream, a passed-on drop (the client sees the connection break, never a clean end without
``response.completed``) or a clear JSON error (429 with ``Retry-After``, 502, 503); no stream in
flight paused longer than ``STALL_LIMIT``; no refresh token presented twice; no login lost (no
account marked *needs login* except the one whose login the run revoked, every other account's
stored refresh token still live); no account lost; file descriptors and upstream connections of
both serve processes back to their baseline; RSS growth under 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `tests` and `tray` importable
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # type: ignore[import-untyped]  # noqa: E402

from tests.fakes import replies  # noqa: E402
from tests.fakes.auth_server import FakeAuth  # noqa: E402
from tests.fakes.faults import UsageFaults  # noqa: E402
from tests.fakes.runner import serving  # noqa: E402
from tests.fakes.upstream import FakeUpstream, make_chatgpt  # noqa: E402
from tests.support.proxykit import CODEX_HEADERS, DEFAULT_CONFIG, add_account, codex_body, write_config  # noqa: E402
from tests.support.soakchaos import calm_usage, lock_holder, token_chaos, usage_chaos  # noqa: E402
from tests.support.soakload import Load  # noqa: E402
from tests.support.soakreport import ProcessFigures, SoakReport, SoakSettings  # noqa: E402
from tray.models import AccountState, CandidateScore, Decision  # noqa: E402
from tray.paths import api_key, resolve_paths, ui_token  # noqa: E402
from tray.store.accounts import Store  # noqa: E402

# ---- processes ---------------------------------------------------------------------------------


@contextmanager
def serve_process(env: dict[str, str], log: Path) -> Iterator[tuple[str, psutil.Process]]:
    """One ``codex-pool serve --port 0``; yields its URL and process. Stopped with SIGTERM."""
    with log.open("w") as err, subprocess.Popen(
        [sys.executable, "-m", "tray", "serve", "--port", "0"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=err, text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "listening on " not in line:
                raise RuntimeError(f"serve did not start: {log.read_text()}")
            yield line.split("listening on ", 1)[1].strip(), psutil.Process(proc.pid)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def upstream_connections(proc: psutil.Process, port: int) -> int:
    """Established TCP connections from ``proc`` to the fake backend."""
    return sum(1 for c in proc.net_connections(kind="tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def closing(proc: psutil.Process) -> int:
    """Sockets whose peer has closed them (CLOSE_WAIT): an idle pooled connection the server timed
    out sits here until its client pool is next used. Bounded by the number of pools, unless leaked."""
    return sum(1 for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_CLOSE_WAIT)


def open_files(proc: psutil.Process) -> int:
    return int(proc.num_fds()) - closing(proc)


def quiesce(urls: list[str], key: str, upstream: FakeUpstream, settle: float = 6.0) -> None:
    """Bring both proxies to the same idle state before each measurement: wait ``settle`` seconds,
    past the fake's keep-alive timeout (uvicorn: 5 s) so it closes idle connections, then send each
    proxy a few requests, which makes its connection pool drop the closed ones. A connection still
    held by an unfinished stream stays established and shows up in the count."""
    plan = upstream.fault_plan
    upstream.fault_plan = None
    try:
        time.sleep(settle)
        for url in urls:
            for _ in range(3):
                httpx.post(f"{url}/backend-api/codex/responses", json=codex_body(), timeout=30,
                           trust_env=False, headers={**CODEX_HEADERS, "Authorization": f"Bearer {key}"})
    finally:
        upstream.fault_plan = plan


# ---- the run -----------------------------------------------------------------------------------


def run_soak(settings: SoakSettings, home: Path, env: dict[str, str] | None = None) -> SoakReport:
    """Run the soak with its pool under ``home`` (``CODEX_POOL_HOME`` for both serve processes)."""
    report = SoakReport(settings)
    chatgpt = make_chatgpt()
    auth, upstream = chatgpt.auth, chatgpt.upstream
    assert isinstance(auth, FakeAuth)
    auth.expires_in = settings.token_lifetime
    issue = auth.issue

    def issue_and_note(user: Any = None, expires_in: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = issue(user, expires_in)
        report.issued.update(str(body[k]) for k in ("access_token", "refresh_token", "id_token"))
        return body

    auth.issue = issue_and_note  # type: ignore[method-assign]
    fake_ids = [chr(ord("a") + i) for i in range(settings.accounts)]
    env = {**(env or os.environ), "CODEX_POOL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    with ExitStack() as stack:
        fake = stack.enter_context(serving(chatgpt.app))
        urls_config = {"upstream-url": f"{fake.url}/backend-api", "auth-url": fake.url}
        write_config(home, {**DEFAULT_CONFIG, **urls_config})
        paths = resolve_paths({"CODEX_POOL_HOME": str(home)}).ensure()
        key = api_key(paths)
        store = stack.enter_context(Store.open(paths.db_file))
        ids = {fid: add_account(store, auth, upstream, fid, expires_in=settings.token_lifetime).id
               for fid in fake_ids}
        for fid in fake_ids:  # streams that take a while (a dozen events 50 ms apart): a frozen proxy shows
            upstream.set_default(fid, replies.ok(deltas=10, event_delay=0.05))
        report.accounts_before = len(store.accounts())
        history(store)  # a pool in use: the activity table already full, as after a day of work
        served = [stack.enter_context(serve_process(env, home / f"serve-{i}.log")) for i in (1, 2)]
        report.logs = [home / "serve-1.log", home / "serve-2.log"]
        urls, procs = [u for u, _ in served], [p for _, p in served]
        load = Load(urls, key, settings, report)

        async def warm_up() -> None:
            await load.run(settings.clients * 8, record=False)

        upstream.faults(rate_429=0.02, rate_5xx=0.02, rate_html_403=0.01, rate_slow=0.02, rate_drop=0.02,
                        rate_overloaded=0.02, seed=settings.seed, slow_delay=1.0, resets_in=2.0)
        auth.token_faults(rate_transient=0.15, seed=settings.seed)
        asyncio.run(warm_up())  # with faults on, so every code path has run once before the baseline
        quiesce(urls, key, upstream)
        if upstream.fault_plan is not None:
            upstream.fault_plan.counts.clear()  # count the measured run only
        grants_before, attempts_before = auth.refresh_grants, auth.refresh_attempts
        transient_before = auth.transient_failures
        report.processes = [ProcessFigures(p.pid, fds=[open_files(p)], closing=[closing(p)],
                                           upstream_conns=[upstream_connections(p, fake.port)],
                                           rss=[p.memory_info().rss]) for p in procs]

        usage_faults = UsageFaults(seed=settings.seed + 3)
        usage_calls_before = sum(upstream.usage_calls.values())

        async def main() -> None:
            started = time.monotonic()
            chaos = [token_chaos(load, settings, auth, upstream, store, ids, report, procs)]
            if settings.usage_faults:
                chaos.append(usage_chaos(load, settings, upstream, fake_ids, usage_faults))
            running = [asyncio.create_task(c) for c in chaos]
            await load.run(settings.requests, record=True)
            report.seconds = time.monotonic() - started
            await asyncio.gather(*running)

        with ExitStack() as around:
            if settings.lock_holds:
                around.enter_context(lock_holder(paths.db_file, settings, report.lock_holds))
            asyncio.run(main())
        report.faults = faults_snapshot(upstream)
        report.usage_faults = dict(usage_faults.counts)
        report.usage_calls = sum(upstream.usage_calls.values()) - usage_calls_before
        upstream.faults()  # off
        auth.token_faults()
        calm_usage(upstream, fake_ids)
        # A slow usage call still running keeps its connection busy up to the longest usage delay;
        # only then does the fake's keep-alive timeout start for it.
        quiesce(urls, key, upstream, settle=6.0 + (usage_faults.delay[1] if settings.usage_faults else 0.0))
        # The proxies' own timers (usage poller every 30 s, token refresh every 60 s) can open a
        # keep-alive connection to the fake just before this sample; the fake closes it within its
        # keep-alive timeout, a leaked one stays. So above the baseline, look again after that timeout.
        for attempt in range(3):
            samples = [(open_files(p), closing(p), upstream_connections(p, fake.port)) for p in procs]
            settled = all(fds <= f.fds[0] and conns <= f.upstream_conns[0]
                          for (fds, _, conns), f in zip(samples, report.processes, strict=True))
            if settled or attempt == 2:
                break
            time.sleep(6.0)
        for proc, figures, (fds, closed, conns) in zip(procs, report.processes, samples, strict=True):
            figures.fds.append(fds)
            figures.closing.append(closed)
            figures.upstream_conns.append(conns)
            figures.rss.append(proc.memory_info().rss)
        report.views = management_views(urls, ui_token(paths))
        report.upstream_open_streams = upstream.open_streams
        report.refresh_grants = auth.refresh_grants - grants_before
        report.refresh_attempts = auth.refresh_attempts - attempts_before
        report.reuse_attempts = auth.reuse_attempts
        report.transient_token_failures = auth.transient_failures - transient_before
        report.permanent_token_failures = auth.permanent_failures
    # Both serve processes have stopped: their logs are complete; read the pool as they left it.
    report.logs += sorted(f for f in paths.log_dir.rglob("*") if f.is_file())
    report.leaks = find_tokens(report.issued, {
        **{str(f): f.read_text("utf-8", "replace") for f in report.logs},
        **{f"management API answer {i}": v for i, v in enumerate(report.views)},
        **{f"error body {i}": v for i, v in enumerate(report.error_bodies)},
    })
    with Store.open(paths.db_file) as store:
        accounts = store.accounts()
        report.accounts_after = len(accounts)
        for account in accounts:
            fid = account.identity.chatgpt_account_id
            if account.state is AccountState.NEEDS_LOGIN:
                report.needs_login.append(fid)
            elif account.tokens.refresh_token not in auth.live:
                report.dead_logins.append(fid)
    return report


def history(store: Store) -> None:
    """Fill the activity table to its cap, so the run starts from a pool's steady state."""
    accounts = store.accounts()
    with store.atomic():
        for n in range(Store.decisions_kept):
            account = accounts[n % len(accounts)]
            scores = tuple(CandidateScore(a.id, a.name, 0.5) for a in accounts)
            store.record_decision(Decision(time.time(), account.id, account.name, "higher score", scores,
                                           None, 12.0, 200, 100.0, "/backend-api/codex/responses"))


def management_views(urls: list[str], token: str) -> list[str]:
    """What the pool window shows (activity, accounts, status) from each serve process."""
    views = []
    for url in urls:
        for path in ("/api/activity?limit=1000", "/api/accounts", "/api/status"):
            answer = httpx.get(url + path, headers={"X-Codex-Pool-Token": token}, timeout=10, trust_env=False)
            answer.raise_for_status()
            views.append(answer.text)
    return views


def find_tokens(tokens: set[str], texts: dict[str, str]) -> list[str]:
    """Names of the texts holding any of ``tokens`` (or a JWT's signature-less head.body part)."""
    needles = {t for t in tokens if len(t) >= 16}
    needles |= {t.rsplit(".", 1)[0] for t in tokens if t.count(".") == 2}
    return [name for name, text in texts.items() if any(n in text for n in needles)]


def faults_snapshot(upstream: FakeUpstream) -> dict[str, int]:
    return dict(upstream.fault_plan.counts) if upstream.fault_plan else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--token-lifetime", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--think", type=float, default=1.0, help="seconds between a client's requests (mean)")
    parser.add_argument("--no-lock", action="store_true", help="no third process taking the write lock")
    parser.add_argument("--no-usage-faults", action="store_true", help="a prompt, healthy usage endpoint")
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it, logs included")
    args = parser.parse_args(argv)
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # the fake's deliberate drops
    settings = SoakSettings(requests=args.requests, clients=args.clients, accounts=args.accounts,
                            token_lifetime=args.token_lifetime, seed=args.seed, think=args.think,
                            lock_holds=not args.no_lock, usage_faults=not args.no_usage_faults)
    with tempfile.TemporaryDirectory(prefix="codex-pool-soak-") as tmp:
        base = args.keep or Path(tmp)
        home = base / "pool"
        fake_home = base / "home"  # never the user's real ~/.codex or opencode login
        env = {**os.environ, "HOME": str(fake_home), "CODEX_HOME": str(fake_home / ".codex"),
               "XDG_CONFIG_HOME": str(fake_home / ".config"),
               "XDG_DATA_HOME": str(fake_home / ".local/share"),
               "XDG_STATE_HOME": str(fake_home / ".local/state"),
               "XDG_CACHE_HOME": str(fake_home / ".cache")}
        report = run_soak(settings, home, env)
        for line in report.lines():
            print(line)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
