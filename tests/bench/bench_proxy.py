"""Proxy benchmark: codex-pool in front of the fake backend versus the fake backend directly, with
the request bodies Codex really sends.

    .venv/bin/python -m tests.bench.bench_proxy [--streams 16] [--events 400] [--rounds 15]
        [--ttfb-samples 300] [--long 1.3MB] [--long-streams 4] [--sweep 60B,1kB,real,250kB,1MB,4MB]
        [--sweep-samples 100] [--phases load,long,sweep] [--encoding zstd] [--write-docs]

Starts the fake backend (``tests.bench.fake_backend``) and ``codex-pool serve`` as two processes,
then measures in the same run, side by side with a direct connection to the same fake:

- ``load``: with the real 43 kB first-turn request of Codex CLI 0.169.0 (``tests/bench/bodies.py``),
  the throughput of ``--streams`` concurrent SSE answers of ``--events`` events each (median over
  ``--rounds`` alternating rounds; goal: >= 0.9x direct), the CPU each process spent per answer,
  and the added time to first byte of one request at a time (goal: <= 2 ms median);
- ``long``: the same with a long session's body (``--long``, the sample's input repeated) at
  ``--long-streams`` concurrent answers, the added TTFB (goal: <= 5 ms median) and the proxy's
  peak RSS under that load (goal: <= 60 MB);
- ``sweep``: for each body size, one request at a time: added TTFB (median, p99) and CPU per request
  of the proxy next to the fake backend's, so the part of the proxy's cost that grows with the body
  shows against the part that does not (the 60-byte body is the floor).

Every request carries the sample's own headers (session id, turn metadata...); ``--encoding zstd``
sends every body compressed, as Codex does with a ChatGPT login on its built-in provider (the
repeated input of the long session compresses far better than a real conversation would).
``--write-docs`` puts the figures in ``docs/performance.md`` under "## Proxy".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from tests.bench.bodies import body_for, codex_headers, label
from tests.bench.loadgen import CpuMeter, Target, concurrent_round, median_ms, percentile, sample_rss
from tests.bench.processes import ROOT, fake_backend, free_port, prepare_pool, proxy_process
from tests.bench.proxy_report import render
from tests.bench.report import write_section
from tests.fakes.jwt import account_claims, make_jwt
from tray.proxy.contentcoding import encode as encode_codings

ACCOUNTS = ("acc-bench-1", "acc-bench-2")
PHASES = ("load", "long", "sweep")


async def warm_up(targets: tuple[Target, Target], count: int) -> None:
    for target in targets:  # connections, usage caches, code paths
        for _ in range(count):
            if not (await target.fetch()).complete:
                raise RuntimeError(f"{target.name}: the warm-up answer was not complete:\n"
                                   f"{target.last_failure}")


async def load(targets: tuple[Target, Target], meter: CpuMeter, proc: psutil.Process, streams: int,
               rounds: int) -> dict[str, float]:
    """Alternating rounds of ``streams`` concurrent answers; throughput, CPU per answer, peak RSS."""
    direct, proxied = targets
    rss_before = proc.memory_info().rss
    peak, stop = [rss_before], asyncio.Event()
    sampler = asyncio.create_task(sample_rss(proc, peak, stop))
    rates: dict[str, list[float]] = {direct.name: [], proxied.name: []}
    sizes: set[int] = set()
    for _ in range(rounds):
        for target in targets:
            before = meter.start()
            wall, results = await concurrent_round(target, streams)
            meter.stop(f"load {target.name}", before)
            if not all(r.complete for r in results):
                raise RuntimeError(f"{target.name}: an answer under load was not complete:\n"
                                   f"{target.last_failure}")
            rates[target.name].append(sum(r.size for r in results) / wall)
            sizes.add(results[0].size)
    stop.set()
    await sampler
    answers = rounds * streams
    d_rate, p_rate = statistics.median(rates[direct.name]), statistics.median(rates[proxied.name])
    return {
        "streams": streams,
        "rounds": rounds,
        "proxy_cpu_ms": meter.per("load proxy", "proxy", answers),
        "fake_cpu_ms": meter.per("load direct", "fake", answers),
        "fake_cpu_ms_proxied": meter.per("load proxy", "fake", answers),
        "direct_all_cpu_ms": meter.all_per("load direct", answers),
        "proxy_all_cpu_ms": meter.all_per("load proxy", answers),
        "direct_mb_s": d_rate / 1e6,
        "proxy_mb_s": p_rate / 1e6,
        "ratio": p_rate / d_rate,
        "rss_before_mb": rss_before / 2**20,
        "rss_peak_mb": peak[0] / 2**20,
        "answer_kb": max(sizes) / 1024,
    }


async def one_at_a_time(targets: tuple[Target, Target], meter: CpuMeter, samples: int) -> dict[str, float]:
    """``samples`` requests to each target in turn, one at a time: TTFB and CPU per request."""
    ttfb: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(samples):
        for target in targets:
            before = meter.start()
            fetched = await target.fetch()
            meter.stop(f"seq {target.name}", before)
            if not fetched.complete:
                raise RuntimeError(f"{target.name}: an answer was not complete:\n{target.last_failure}")
            ttfb[target.name].append(fetched.ttfb)
    d_t, p_t = ttfb["direct"], ttfb["proxy"]
    figures = {
        "samples": samples,
        "direct_ttfb_median_ms": median_ms(d_t),
        "proxy_ttfb_median_ms": median_ms(p_t),
        "direct_ttfb_p99_ms": percentile(d_t, 0.99) * 1000,
        "proxy_ttfb_p99_ms": percentile(p_t, 0.99) * 1000,
        "proxy_cpu_ms": meter.per("seq proxy", "proxy", samples),
        "fake_cpu_ms": meter.per("seq direct", "fake", samples),
    }
    figures["added_ttfb_median_ms"] = figures["proxy_ttfb_median_ms"] - figures["direct_ttfb_median_ms"]
    figures["added_ttfb_p99_ms"] = figures["proxy_ttfb_p99_ms"] - figures["direct_ttfb_p99_ms"]
    return figures


async def measure(targets: tuple[Target, Target], proc: psutil.Process, fake: psutil.Process,
                  args: argparse.Namespace) -> dict[str, Any]:
    procs = {"proxy": proc, "fake": fake, "client": psutil.Process()}
    out: dict[str, Any] = {"body_bytes": len(body_for("real")), "load_average_start": os.getloadavg()[0]}
    def use(name: str) -> None:
        raw = body_for(name)
        for target in targets:
            target.body = encode_codings(raw, [args.encoding]) if args.encoding else raw
        out.setdefault("sizes", {})[name] = (len(raw), len(targets[0].body))

    use("real")
    await warm_up(targets, 20)
    if "load" in args.phases:
        out["load"] = await load(targets, CpuMeter(procs), proc, args.streams, args.rounds)
        out["ttfb"] = await one_at_a_time(targets, CpuMeter(procs), args.ttfb_samples)
    if "long" in args.phases:
        use(args.long)
        out["long_body_bytes"] = out["sizes"][args.long][0]
        await warm_up(targets, 4)
        out["long"] = await load(targets, CpuMeter(procs), proc, args.long_streams, args.rounds)
        out["long_ttfb"] = await one_at_a_time(targets, CpuMeter(procs), max(20, args.ttfb_samples // 3))
    if "sweep" in args.phases:
        out["sweep"] = []
        for name in args.sweep.split(","):
            use(name)
            await warm_up(targets, 3)
            figures = await one_at_a_time(targets, CpuMeter(procs), args.sweep_samples)
            plain, sent = out["sizes"][name]
            shown = label(plain) + (f" ({args.encoding}: {label(sent)})" if args.encoding else "")
            out["sweep"].append({"body": shown, "bytes": plain, "sent_bytes": sent, **figures})
            print(f"  {shown}: +{figures['added_ttfb_median_ms']:.2f} ms, proxy "
                  f"{figures['proxy_cpu_ms']:.1f} ms CPU / request", file=sys.stderr)
    out["rss_end_mb"] = proc.memory_info().rss / 2**20
    out["load_average_1min"] = os.getloadavg()[0]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="codex-pool proxy benchmark")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--events", type=int, default=400, help="SSE events per answer (>= 9)")
    parser.add_argument("--event-size", type=int, default=64, help="characters of text per delta event")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ttfb-samples", type=int, default=300)
    parser.add_argument("--long", default="1.3MB", help="the long session's body size")
    parser.add_argument("--long-streams", type=int, default=4)
    parser.add_argument("--sweep", default="60B,1kB,real,250kB,1MB,4MB", help="body sizes, comma-separated")
    parser.add_argument("--sweep-samples", type=int, default=100)
    parser.add_argument("--phases", default=",".join(PHASES), help="which of load,long,sweep to run")
    parser.add_argument("--encoding", default="", help="send every body compressed: zstd (as Codex "
                        "does with a ChatGPT login on its built-in provider), gzip or deflate")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = parser.parse_args(argv)
    args.phases = set(args.phases.split(","))
    now = time.time()
    tokens = {
        a: make_jwt(account_claims(a, f"user-{n}", plan="pro", expires_in=86_400, now=now))
        for n, a in enumerate(ACCOUNTS)
    }
    port = free_port()
    headers = codex_headers()
    with (
        tempfile.TemporaryDirectory(prefix="codex-pool-bench-") as tmp,
        fake_backend(tokens, args.events - 8, args.event_size) as (upstream, fake_pid),
    ):
        key = prepare_pool(Path(tmp), upstream, tokens, port)
        upstream_port = int(upstream.rsplit(":", 1)[1])
        path = "/backend-api/codex/responses"
        if args.encoding:
            headers.append(("content-encoding", args.encoding))
        direct = Target("direct", upstream_port, path, tokens[ACCOUNTS[0]],
                        [*headers, ("chatgpt-account-id", ACCOUNTS[0])])
        proxied = Target("proxy", port, path, key, list(headers))
        with proxy_process(Path(tmp), port) as proc:
            print(f"codex-pool serve: pid {proc.pid}", file=sys.stderr)
            figures = asyncio.run(measure((direct, proxied), proc, psutil.Process(fake_pid), args))
    text = render(figures, args)
    print(text)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    if args.write_docs:
        write_section(ROOT / "docs" / "performance.md", "Proxy", text)
        print("updated docs/performance.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
