"""Proxy benchmark: codex-pool in front of the fake backend versus the fake backend directly.

    .venv/bin/python -m tests.bench.bench_proxy [--streams 16] [--events 400] [--rounds 5]
                                                [--ttfb-samples 300] [--write-docs]

Starts the fake backend (``tests.bench.fake_backend``) and ``codex-pool serve`` as two processes, then
measures in the same run, side by side:

- throughput of ``--streams`` concurrent SSE answers of ``--events`` events each, through the proxy and
  directly (median over ``--rounds`` alternating rounds; goal: proxy >= 0.9x direct);
- time to first byte of one request at a time, through the proxy and directly; the added TTFB is
  the difference of the medians and of the 99th percentiles (goal: <= 2 ms / 10 ms);
- the proxy process's RSS (psutil) before and at its peak during the concurrent load.

The load generator is a minimal asyncio HTTP/1.1 client, so it costs little next to either server.
``--write-docs`` puts the figures in ``docs/performance.md`` under "## Proxy".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]

from tests.bench.report import write_section
from tests.fakes.jwt import account_claims, make_jwt
from tray.models import Identity, TokenSet
from tray.paths import api_key, resolve_paths
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = ("acc-bench-1", "acc-bench-2")
BODY = json.dumps({"model": "gpt-5.5", "stream": True, "store": False, "input": "say hi"}).encode()


@dataclass(frozen=True)
class Fetch:
    ttfb: float  # seconds from sending the request to the first body byte
    total: float  # seconds until the connection closed
    size: int  # bytes received
    complete: bool  # the answer ended with response.completed


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    path: str
    auth: str

    async def fetch(self) -> Fetch:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.auth}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
        )
        started = time.perf_counter()
        writer.write(head.encode() + BODY)
        status_and_headers = await reader.readuntil(b"\r\n\r\n")
        chunks = [await reader.read(65536)]
        first = time.perf_counter()
        while chunk := await reader.read(65536):
            chunks.append(chunk)
        done = time.perf_counter()
        writer.close()
        body = b"".join(chunks)
        ok = status_and_headers.split(b" ", 2)[1] == b"200" and b"event: response.completed" in body
        return Fetch(first - started, done - started, len(status_and_headers) + len(body), ok)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fake_backend(tokens: dict[str, str], deltas: int, delta_size: int) -> Iterator[tuple[str, int]]:
    args = [sys.executable, "-m", "tests.bench.fake_backend", "--deltas", str(deltas)]
    args += ["--delta-size", str(delta_size)]
    for account_id, token in tokens.items():
        args += ["--account", f"{account_id}={token}"]
    proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"fake backend did not start: {line!r}")
        yield line.split()[1], proc.pid
    finally:
        proc.kill()
        proc.wait(10)


def prepare_pool(home: Path, upstream: str, tokens: dict[str, str], port: int) -> str:
    """A pool home with the bench accounts and a config pointing at the fake; returns the local key."""
    paths = resolve_paths({"CODEX_POOL_HOME": str(home)}).ensure()
    paths.config_file.write_text(
        f'upstream-url = "{upstream}/backend-api"\nauth-url = "{upstream}"\nport = {port}\n'
        'log-level = "warning"\n',
        encoding="utf-8",
    )
    store = Store.open(paths.db_file)
    try:
        for n, (account_id, token) in enumerate(tokens.items()):
            tokens_set = TokenSet(token, f"rt-{account_id}", None, time.time() + 86_400)
            store.save_login(
                Identity(account_id, f"user-{n}"), tokens_set, f"{account_id}@example.com", "pro"
            )
    finally:
        store.close()
    return api_key(paths)


@contextmanager
def proxy_process(home: Path, port: int) -> Iterator[psutil.Process]:
    env = {**os.environ, "CODEX_POOL_HOME": str(home)}
    args = [sys.executable, "-m", "tray", "serve", "--port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"codex-pool serve did not start:\n{err[-2000:]}")
            time.sleep(0.05)
        yield psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def concurrent_round(target: Target, streams: int) -> tuple[float, list[Fetch]]:
    started = time.perf_counter()
    results = await asyncio.gather(*(target.fetch() for _ in range(streams)))
    return time.perf_counter() - started, list(results)


async def sample_rss(proc: psutil.Process, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        await asyncio.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def measure(
    direct: Target, proxied: Target, proc: psutil.Process, fake: psutil.Process, args: argparse.Namespace
) -> dict[str, float]:
    for target in (direct, proxied):  # warm up connections, usage caches and code paths
        for _ in range(20):
            if not (await target.fetch()).complete:
                raise RuntimeError(f"{target.name}: the warm-up answer was not complete")
    rss_before = proc.memory_info().rss
    peak = [rss_before]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(proc, peak, stop))
    rates: dict[str, list[float]] = {direct.name: [], proxied.name: []}
    sizes: set[int] = set()
    me = psutil.Process()
    # CPU seconds per target: [proxy process, fake process, this load generator]
    cpu = {direct.name: [0.0, 0.0, 0.0], proxied.name: [0.0, 0.0, 0.0]}
    for _ in range(args.rounds):
        for target in (direct, proxied):
            before = (cpu_seconds(proc), cpu_seconds(fake), cpu_seconds(me))
            wall, results = await concurrent_round(target, args.streams)
            for n, who in enumerate((proc, fake, me)):
                cpu[target.name][n] += cpu_seconds(who) - before[n]
            if not all(r.complete for r in results):
                raise RuntimeError(f"{target.name}: an answer under load was not complete")
            rates[target.name].append(sum(r.size for r in results) / wall)
            sizes.add(results[0].size)
    stop.set()
    await sampler
    ttfb: dict[str, list[float]] = {direct.name: [], proxied.name: []}
    for _ in range(args.ttfb_samples):
        for target in (direct, proxied):
            ttfb[target.name].append((await target.fetch()).ttfb)
    d_rate, p_rate = statistics.median(rates[direct.name]), statistics.median(rates[proxied.name])
    d_t, p_t = ttfb[direct.name], ttfb[proxied.name]
    answers = args.rounds * args.streams
    return {
        "proxy_cpu_ms_per_answer": cpu[proxied.name][0] / answers * 1000,
        "fake_cpu_ms_per_answer": cpu[direct.name][1] / answers * 1000,
        "direct_all_cpu_ms_per_answer": sum(cpu[direct.name]) / answers * 1000,
        "proxy_all_cpu_ms_per_answer": sum(cpu[proxied.name]) / answers * 1000,
        "load_average_1min": os.getloadavg()[0],
        "direct_mb_s": d_rate / 1e6,
        "proxy_mb_s": p_rate / 1e6,
        "ratio": p_rate / d_rate,
        "direct_ttfb_median_ms": statistics.median(d_t) * 1000,
        "proxy_ttfb_median_ms": statistics.median(p_t) * 1000,
        "added_ttfb_median_ms": (statistics.median(p_t) - statistics.median(d_t)) * 1000,
        "direct_ttfb_p99_ms": percentile(d_t, 0.99) * 1000,
        "proxy_ttfb_p99_ms": percentile(p_t, 0.99) * 1000,
        "added_ttfb_p99_ms": (percentile(p_t, 0.99) - percentile(d_t, 0.99)) * 1000,
        "rss_before_mb": rss_before / 2**20,
        "rss_peak_mb": peak[0] / 2**20,
        "answer_kb": max(sizes) / 1024,
    }


def render(figures: dict[str, float], args: argparse.Namespace) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    f = figures
    ceiling = f["direct_all_cpu_ms_per_answer"] / f["proxy_all_cpu_ms_per_answer"]
    return (
        f"Measured by `tests/bench/bench_proxy.py` on {time.strftime('%Y-%m-%d', time.gmtime())} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}): the fake "
        f"backend and `codex-pool serve` each in their own process on loopback, one account answer = "
        f"{args.events} SSE events (~{f['answer_kb']:.0f} kB).\n\n"
        "| figure | direct | through codex-pool | goal |\n| --- | --- | --- | --- |\n"
        f"| throughput, {args.streams} concurrent streams (median of {args.rounds} rounds) "
        f"| {f['direct_mb_s']:.1f} MB/s | {f['proxy_mb_s']:.1f} MB/s ({f['ratio']:.2f}x) "
        f"| >= 0.9x: {verdict(f['ratio'] >= 0.9)} |\n"
        f"| time to first byte, median ({args.ttfb_samples} sequential requests) "
        f"| {f['direct_ttfb_median_ms']:.2f} ms | {f['proxy_ttfb_median_ms']:.2f} ms "
        f"(+{f['added_ttfb_median_ms']:.2f} ms) "
        f"| added <= 2 ms: {verdict(f['added_ttfb_median_ms'] <= 2)} |\n"
        f"| time to first byte, p99 | {f['direct_ttfb_p99_ms']:.2f} ms | {f['proxy_ttfb_p99_ms']:.2f} ms "
        f"(+{f['added_ttfb_p99_ms']:.2f} ms) | added <= 10 ms: {verdict(f['added_ttfb_p99_ms'] <= 10)} |\n"
        f"| proxy RSS, idle after warm-up / peak under load | | {f['rss_before_mb']:.0f} MB / "
        f"{f['rss_peak_mb']:.0f} MB | |\n"
        f"| CPU time per answer (the fake backend serving it / the proxy relaying it) "
        f"| {f['fake_cpu_ms_per_answer']:.1f} ms | {f['proxy_cpu_ms_per_answer']:.1f} ms | |\n"
        f"| CPU time per answer, all three processes (client, proxy, fake) "
        f"| {f['direct_all_cpu_ms_per_answer']:.1f} ms | {f['proxy_all_cpu_ms_per_answer']:.1f} ms "
        f"| ceiling when CPU-bound: {ceiling:.2f}x |\n\n"
        f"The machine's 1-minute load average at the end of the run was {f['load_average_1min']:.1f}. "
        "Wall-clock figures (throughput, TTFB) move with other load on the machine; the CPU time per "
        "answer does not, and says what the relay itself costs. On loopback the whole run is CPU-bound: "
        "the proxied path runs the relay on the same CPUs as the backend and the client, so its "
        "throughput is bounded by the CPU ratio in the last row, and only a cheaper relay raises that "
        "bound; against the real backend, which streams over the network, the relay's CPU is not "
        "the limit.\n\n"
        "Run it again with `.venv/bin/python -m tests.bench.bench_proxy --write-docs`.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="codex-pool proxy benchmark")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--events", type=int, default=400, help="SSE events per answer (>= 9)")
    parser.add_argument("--event-size", type=int, default=64, help="characters of text per delta event")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ttfb-samples", type=int, default=300)
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = parser.parse_args(argv)
    now = time.time()
    tokens = {
        a: make_jwt(account_claims(a, f"user-{n}", plan="pro", expires_in=86_400, now=now))
        for n, a in enumerate(ACCOUNTS)
    }
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="codex-pool-bench-") as tmp,
        fake_backend(tokens, args.events - 8, args.event_size) as (upstream, fake_pid),
    ):
        key = prepare_pool(Path(tmp), upstream, tokens, port)
        upstream_port = int(upstream.rsplit(":", 1)[1])
        direct = Target("direct", upstream_port, "/backend-api/codex/responses", tokens[ACCOUNTS[0]])
        proxied = Target("proxy", port, "/backend-api/codex/responses", key)
        with proxy_process(Path(tmp), port) as proc:
            figures = asyncio.run(measure(direct, proxied, proc, psutil.Process(fake_pid), args))
    text = render(figures, args)
    print(text)
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}, indent=2))
    if args.write_docs:
        write_section(ROOT / "docs" / "performance.md", "Proxy", text)
        print("updated docs/performance.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
