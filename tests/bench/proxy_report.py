"""The proxy benchmark's figures as the Markdown that goes in docs/performance.md ("## Proxy")."""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _kb(size: float) -> str:
    return f"{size / 1024:.0f} kB" if size < 2**20 else f"{size / 2**20:.2f} MB"


def _load_rows(f: dict[str, Any], t: dict[str, Any], body: str, ttfb_goal: float | None) -> list[str]:
    ceiling = f["direct_all_cpu_ms"] / f["proxy_all_cpu_ms"]
    goal_ratio = f">= 0.9x: {_verdict(f['ratio'] >= 0.9)}" if f["streams"] >= 16 else ""
    goal_ttfb = (f"added <= {ttfb_goal:g} ms: {_verdict(t['added_ttfb_median_ms'] <= ttfb_goal)}"
                 if ttfb_goal is not None else "")
    return [
        f"| **{body} body** | | | |",
        f"| throughput, {f['streams']} concurrent streams (median of {f['rounds']} rounds) "
        f"| {f['direct_mb_s']:.1f} MB/s | {f['proxy_mb_s']:.1f} MB/s ({f['ratio']:.2f}x) | {goal_ratio} |",
        f"| time to first byte, median ({t['samples']} requests one at a time) "
        f"| {t['direct_ttfb_median_ms']:.2f} ms | {t['proxy_ttfb_median_ms']:.2f} ms "
        f"({t['added_ttfb_median_ms']:+.2f} ms) | {goal_ttfb} |",
        f"| time to first byte, p99 | {t['direct_ttfb_p99_ms']:.2f} ms | {t['proxy_ttfb_p99_ms']:.2f} ms "
        f"({t['added_ttfb_p99_ms']:+.2f} ms) | |",
        f"| CPU per answer under load (the fake producing it / the proxy relaying it) "
        f"| {f['fake_cpu_ms']:.1f} ms | {f['proxy_cpu_ms']:.1f} ms | proxy < fake: "
        f"{_verdict(f['proxy_cpu_ms'] < f['fake_cpu_ms'])} |",
        f"| CPU per answer, all three processes (client, proxy, fake) | {f['direct_all_cpu_ms']:.1f} ms "
        f"| {f['proxy_all_cpu_ms']:.1f} ms | ceiling when CPU-bound: {ceiling:.2f}x |",
        f"| proxy RSS, before / peak under this load | | {f['rss_before_mb']:.0f} MB / "
        f"{f['rss_peak_mb']:.0f} MB | |",
    ]


def render(figures: dict[str, Any], args: argparse.Namespace) -> str:
    """The section's text: the run's conditions, the load table, the body-size sweep."""
    f = figures
    answer = f.get("load", f.get("long", {})).get("answer_kb", 0)
    out = [
        f"Measured by `tests/bench/bench_proxy.py` on {time.strftime('%Y-%m-%d', time.gmtime())} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}, 1-minute "
        f"load average {f.get('load_average_start', float('nan')):.1f} at the start and "
        f"{f['load_average_1min']:.1f} at the end): the fake backend and `codex-pool serve` "
        f"each in their own process on loopback, one answer = {args.events} SSE events (~{answer:.0f} kB), "
        "every request with the headers and body Codex CLI 0.169.0 sends.",
        "",
    ]
    if "load" in f or "long" in f:
        out += ["| figure | direct | through codex-pool | goal |", "| --- | --- | --- | --- |"]
        if "load" in f:
            out += _load_rows(f["load"], f["ttfb"], f"real first turn, {_kb(f['body_bytes'])}", 2)
        if "long" in f:
            out += _load_rows(f["long"], f["long_ttfb"], f"long session, {_kb(f['long_body_bytes'])}", 5)
            rss = f["long"]["rss_peak_mb"]
            out += [f"| proxy RSS under the long-session load | | {rss:.0f} MB "
                    f"| <= 60 MB: {_verdict(rss <= 60)} |"]
        out.append("")
    if "sweep" in f:
        out += [
            "Body-size sweep, one request at a time, each size's requests to the fake directly and "
            "through the proxy alternating; CPU per request is the whole 400-event answer's:",
            "",
            "| body | TTFB direct, median | through codex-pool, median | added median / p99 "
            "| CPU per request: fake (direct) | proxy |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in f["sweep"]:
            out.append(
                f"| {row['body']} | {row['direct_ttfb_median_ms']:.2f} ms "
                f"| {row['proxy_ttfb_median_ms']:.2f} ms "
                f"| {row['added_ttfb_median_ms']:+.2f} / {row['added_ttfb_p99_ms']:+.2f} ms "
                f"| {row['fake_cpu_ms']:.1f} ms | {row['proxy_cpu_ms']:.1f} ms |"
            )
        out.append("")
    out += [
        "Wall-clock figures (throughput, TTFB) move with other load on the machine; CPU per answer "
        "moves much less and says what the proxy itself costs. On loopback the concurrent run is "
        "CPU-bound: client, proxy and fake share the CPUs, so the proxied throughput is bounded by the "
        "ratio in the \"all three processes\" row; against the real backend, which streams over the "
        "network, the proxy's CPU is not the limit.",
        "",
        "Run it again with `.venv/bin/python -m tests.bench.bench_proxy --write-docs`.",
    ]
    return "\n".join(out) + "\n"
