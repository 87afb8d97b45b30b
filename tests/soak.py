"""Soak run: many requests from concurrent clients through two ``codex-pool serve`` processes that
share one pool, with upstream and token-endpoint faults on and short-lived access tokens, so that
refreshes, failovers and cross-process races happen all the time.

    python tests/soak.py                     # 1,000 requests (what CI runs, via tests/test_soak.py)
    python tests/soak.py --requests 10000    # the long version

It prints one line of figures per measure and exits 1 when any check fails. What it checks (see
``SoakReport.problems``): every request answered within its timeout with a complete stream, a
passed-on drop (the client sees the connection break, never a clean end without
``response.completed``) or a clear JSON error (429 with ``Retry-After``, 502, 503); no refresh token
presented twice; no account marked *needs login* except the one whose login the run revoked; no
account lost; every other account's stored refresh token still live; file descriptors and upstream
connections of both serve processes back to their baseline; RSS growth under 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `tests` and `tray` importable
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # type: ignore[import-untyped]  # noqa: E402

from tests.fakes.auth_server import FakeAuth  # noqa: E402
from tests.fakes.runner import serving  # noqa: E402
from tests.fakes.upstream import FakeUpstream, make_chatgpt  # noqa: E402
from tests.proxykit import CODEX_HEADERS, DEFAULT_CONFIG, add_account, codex_body, write_config  # noqa: E402
from tray.models import AccountState, CandidateScore, Decision  # noqa: E402
from tray.paths import api_key, resolve_paths, ui_token  # noqa: E402
from tray.store import Store  # noqa: E402

GOOD = ("completed", "dropped", "stream_error", "pooled_429", "error_502", "error_503")
RSS_GROWTH_LIMIT = 0.10
MAX_CLOSING = 3  # idle pools that are not used by the probes (token endpoint, usage) may hold one each


@dataclass(frozen=True)
class SoakSettings:
    requests: int = 1000
    clients: int = 32
    accounts: int = 8
    token_lifetime: float = 8.0  # seconds; refreshed after half of it
    timeout: float = 60.0  # per request, the whole answer
    seed: int = 7
    revoke: bool = True  # permanently revoke one account's login a quarter of the way in
    invalidate_every: int = 40  # every N answers, invalidate one account's access token upstream


@dataclass
class ProcessFigures:
    pid: int
    fds: list[int] = field(default_factory=list)  # baseline, after (without peer-closed sockets)
    closing: list[int] = field(default_factory=list)  # sockets the peer closed, not yet released
    upstream_conns: list[int] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    rss_curve: list[int] = field(default_factory=list)  # sampled every tenth of the run


@dataclass
class SoakReport:
    settings: SoakSettings
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    refresh_grants: int = 0
    refresh_attempts: int = 0
    reuse_attempts: int = 0
    transient_token_failures: int = 0
    permanent_token_failures: int = 0
    invalidated: int = 0
    revoked: str | None = None
    accounts_before: int = 0
    accounts_after: int = 0
    needs_login: list[str] = field(default_factory=list)
    dead_logins: list[str] = field(default_factory=list)  # not revoked, yet the stored refresh token is gone
    upstream_open_streams: int = 0
    processes: list[ProcessFigures] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)  # every token the fakes issued (for the log scan)
    logs: list[Path] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)  # one example per bad outcome
    error_bodies: list[str] = field(default_factory=list)  # what clients got with an error status
    views: list[str] = field(default_factory=list)  # management API answers after the run
    leaks: list[str] = field(default_factory=list)  # where an issued token showed up

    @property
    def problems(self) -> list[str]:
        found = []
        bad = {k: v for k, v in self.outcomes.items() if k not in GOOD}
        if bad:
            found.append(f"bad outcomes {bad}: {self.examples}")
        if sum(self.outcomes.values()) != self.settings.requests:
            found.append(f"answered {sum(self.outcomes.values())} of {self.settings.requests}")
        if self.reuse_attempts:
            found.append(f"{self.reuse_attempts} refresh tokens presented twice")
        wrong = [n for n in self.needs_login if n != self.revoked]
        if wrong:
            found.append(f"accounts wrongly marked needs login: {wrong}")
        if self.accounts_after != self.accounts_before:
            found.append(f"accounts before {self.accounts_before}, after {self.accounts_after}")
        if self.dead_logins:
            found.append(f"accounts whose stored login no longer refreshes: {self.dead_logins}")
        if self.leaks:
            found.append(f"issued tokens found in: {sorted(set(self.leaks))}")
        if self.upstream_open_streams:
            found.append(f"{self.upstream_open_streams} upstream streams left open")
        for proc in self.processes:
            if proc.fds[1] > proc.fds[0]:
                found.append(f"pid {proc.pid}: open files {proc.fds[0]} -> {proc.fds[1]}")
            if proc.closing[1] > MAX_CLOSING:
                found.append(f"pid {proc.pid}: {proc.closing[1]} closed sockets not released")
            if proc.upstream_conns[1] > proc.upstream_conns[0]:
                found.append(f"pid {proc.pid}: upstream connections {proc.upstream_conns[0]} -> "
                             f"{proc.upstream_conns[1]}")
            if proc.rss[1] > proc.rss[0] * (1 + RSS_GROWTH_LIMIT):
                found.append(f"pid {proc.pid}: RSS {proc.rss[0] >> 20} -> {proc.rss[1] >> 20} MiB")
        return found

    def lines(self) -> list[str]:
        lat = sorted(self.latencies) or [0.0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        out = [
            f"requests: {sum(self.outcomes.values())} in {self.seconds:.1f} s from {self.settings.clients} "
            f"clients over 2 serve processes, {self.settings.accounts} accounts",
            "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            "statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())),
            f"latency: median {statistics.median(lat):.3f} s, p99 {p99:.3f} s, max {lat[-1]:.3f} s "
            f"(timeout {self.settings.timeout:g} s)",
            "upstream faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())),
            f"access tokens invalidated upstream: {self.invalidated}; login revoked: {self.revoked}",
            f"token endpoint: {self.refresh_attempts} refresh requests, {self.refresh_grants} grants, "
            f"{self.transient_token_failures} transient failures, {self.permanent_token_failures} permanent, "
            f"{self.reuse_attempts} refresh tokens presented twice",
            f"accounts: {self.accounts_before} before, {self.accounts_after} after; needs login: "
            f"{self.needs_login or 'none'}; stored logins dead: {self.dead_logins or 'none'}",
            f"upstream streams left open: {self.upstream_open_streams}",
            f"secrets: {len(self.issued)} issued tokens searched in {len(self.logs)} log files, "
            f"{len(self.views)} management API answers and {len(self.error_bodies)} error bodies; "
            f"found in: {sorted(set(self.leaks)) or 'none'}",
        ]
        for proc in self.processes:
            growth = (proc.rss[1] - proc.rss[0]) / proc.rss[0] * 100
            out.append(
                f"serve pid {proc.pid}: open files {proc.fds[0]} -> {proc.fds[1]} "
                f"(+{proc.closing[1]} closing), upstream connections "
                f"{proc.upstream_conns[0]} -> {proc.upstream_conns[1]}, RSS {proc.rss[0] / 2**20:.1f} -> "
                f"{proc.rss[1] / 2**20:.1f} MiB ({growth:+.1f} %); RSS each tenth of the run: "
                + " ".join(f"{r / 2**20:.1f}" for r in proc.rss_curve)
            )
        out.append("problems: " + ("; ".join(self.problems) or "none"))
        return out


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


def quiesce(urls: list[str], key: str, upstream: FakeUpstream) -> None:
    """Bring both proxies to the same idle state before each measurement: wait past the fake's
    keep-alive timeout (uvicorn: 5 s) so it closes idle connections, then send each proxy a few
    requests, which makes its connection pool drop the closed ones. A connection still held by an
    unfinished stream stays established and shows up in the count."""
    plan = upstream.fault_plan
    upstream.fault_plan = None
    try:
        time.sleep(6.0)
        for url in urls:
            for _ in range(3):
                httpx.post(f"{url}/backend-api/codex/responses", json=codex_body(), timeout=30,
                           trust_env=False, headers={**CODEX_HEADERS, "Authorization": f"Bearer {key}"})
    finally:
        upstream.fault_plan = plan


# ---- load --------------------------------------------------------------------------------------


def classify(status: int, raw: bytes, broke: bool, headers: httpx.Headers) -> str:
    if status == 200:
        types = []
        for frame in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
            for line in frame.split(b"\n"):
                if line.startswith(b"data:"):
                    try:
                        types.append(json.loads(line[5:]).get("type"))
                    except (ValueError, AttributeError):
                        types.append("?")
        if types and types[-1] == "response.completed" and not broke:
            return "completed"
        if broke and "response.completed" not in types:
            return "dropped"
        if not broke and types and types[-1] in ("response.failed", "error", "response.incomplete"):
            return "stream_error"
        return "truncated_as_complete" if not broke else "broken_after_completed"
    try:
        body = json.loads(raw)
    except ValueError:
        return f"non_json_{status}"
    if not isinstance(body, dict) or "error" not in body:
        return f"unclear_{status}"
    if status == 429:
        code = body["error"].get("code") if isinstance(body["error"], dict) else None
        if headers.get("retry-after"):
            return "pooled_429"
        return "pooled_429_without_retry_after" if code == "pool_exhausted" else "429_without_retry_after"
    if status in (502, 503):
        return f"error_{status}"
    return f"status_{status}"


class Load:
    def __init__(self, urls: list[str], key: str, settings: SoakSettings, report: SoakReport) -> None:
        self.urls, self.key, self.settings, self.report = urls, key, settings, report
        self.next = 0
        self.done = 0
        self.rng = random.Random(settings.seed)

    async def one(self, client: httpx.AsyncClient, n: int, record: bool) -> None:
        headers = {**CODEX_HEADERS, "Authorization": f"Bearer {self.key}",
                   "session-id": f"soak-session-{self.rng.randrange(64)}"}
        started = time.monotonic()
        status, raw, broke, got = 0, b"", False, httpx.Headers()

        async def fetch() -> None:
            nonlocal status, raw, broke, got
            async with client.stream("POST", "/backend-api/codex/responses", json=codex_body(),
                                     headers=headers) as response:
                status, got = response.status_code, response.headers
                try:
                    async for chunk in response.aiter_raw():
                        raw += chunk
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    broke = True

        try:
            await asyncio.wait_for(fetch(), self.settings.timeout)
            outcome = classify(status, raw, broke, got)
        except TimeoutError:
            outcome = "hang"
        except httpx.HTTPError as exc:
            outcome = f"client_error_{type(exc).__name__}"
        if record:
            self.report.outcomes[outcome] += 1
            self.report.statuses[status] += 1
            self.report.latencies.append(time.monotonic() - started)
            if outcome not in GOOD:
                self.report.examples.setdefault(outcome, f"status {status}: {raw[-300:]!r}")
            if status != 200 and len(self.report.error_bodies) < 2000:
                self.report.error_bodies.append(raw.decode("utf-8", "replace"))

    async def worker(self, index: int, total: int, record: bool) -> None:
        url = self.urls[index % len(self.urls)]
        async with httpx.AsyncClient(base_url=url, timeout=self.settings.timeout, trust_env=False) as client:
            while self.next < total:
                n = self.next
                self.next += 1
                await self.one(client, n, record)
                self.done += 1

    async def run(self, total: int, record: bool) -> None:
        self.next = self.done = 0
        await asyncio.gather(*(self.worker(i, total, record) for i in range(self.settings.clients)))


async def chaos(load: Load, settings: SoakSettings, auth: FakeAuth, upstream: FakeUpstream,
                store: Store, ids: dict[str, int], report: SoakReport, procs: list[psutil.Process]) -> None:
    """While the load runs: now and then upstream rejects an account's current access token (the
    proxy must refresh on the 401), and a quarter of the way in one account's login is revoked for
    good (its refresh token answers ``invalid_grant``, its access tokens 401)."""
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

        async def main() -> None:
            started = time.monotonic()
            chaos_task = asyncio.create_task(chaos(load, settings, auth, upstream, store, ids, report, procs))
            await load.run(settings.requests, record=True)
            report.seconds = time.monotonic() - started
            await chaos_task

        asyncio.run(main())
        report.faults = faults_snapshot(upstream)
        upstream.faults()  # off
        auth.token_faults()
        quiesce(urls, key, upstream)
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
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it, logs included")
    args = parser.parse_args(argv)
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # the fake's deliberate drops
    settings = SoakSettings(requests=args.requests, clients=args.clients, accounts=args.accounts,
                            token_lifetime=args.token_lifetime, seed=args.seed)
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
