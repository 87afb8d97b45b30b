"""Responses over HTTP and over the WebSocket through codex-pool: one growing conversation each way.

    .venv/bin/python -m tests.bench.bench_websocket [--requests 20] [--step-kb 50] [--write-docs]

A conversation of ``--requests`` requests grows by ``--step-kb`` kB of new input per request (a tool
result, say), so the last context is about 1 MB, as in a long Codex session. Over HTTP every request
carries the whole context, as Codex CLI sends it; over the WebSocket the first request carries the
whole context and every later one only what is new plus ``previous_response_id``, as Codex CLI does
on one socket. The proxy (a real engine with two accounts) and the fake backend run in this process
on loopback. Measured per request: the bytes the client sent, the bytes the backend received, and
the time to the first byte (HTTP) or first message (WebSocket) of the answer. ``--write-docs`` puts
the table in docs/performance.md under "## Responses over WebSocket".
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from tests.bench.report import write_section
from tests.support.proxykit import CODEX_HEADERS, Pool, codex_body, running_pool

ROOT = Path(__file__).resolve().parents[2]


def item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def growth(requests: int, step: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [item(base64.b64encode(rng.randbytes(step * 3 // 4)).decode()) for _ in range(requests)]


def over_http(pool: Pool, steps: list[dict[str, Any]]) -> list[tuple[int, float]]:
    sent: list[tuple[int, float]] = []
    context: list[dict[str, Any]] = []
    with pool.client() as client:
        for step in steps:
            context.append(step)
            body = json.dumps(codex_body(input=context)).encode()
            started = time.perf_counter()
            with client.stream("POST", "/backend-api/codex/responses", content=body,
                               headers={**CODEX_HEADERS, "content-type": "application/json"}) as answer:
                first = None
                for _ in answer.iter_raw():
                    first = first or time.perf_counter() - started
            sent.append((len(body), first or 0.0))
    return sent


def over_socket(pool: Pool, steps: list[dict[str, Any]]) -> list[tuple[int, float]]:
    sent: list[tuple[int, float]] = []
    url = pool.url.replace("http://", "ws://") + "/backend-api/codex/responses"
    headers = {**CODEX_HEADERS, "authorization": f"Bearer {pool.engine.api_key}"}
    headers.pop("accept")
    previous: str | None = None
    with connect(url, additional_headers=headers, max_size=None, proxy=None, compression=None) as conn:
        for step in steps:
            body = codex_body(input=[*codex_body()["input"], step] if previous is None else [step])
            body.pop("stream")
            if previous is not None:
                body["previous_response_id"] = previous
            text = json.dumps({"type": "response.create", **body})
            started = time.perf_counter()
            conn.send(text)
            first = None
            while True:
                event = json.loads(conn.recv(timeout=30))
                first = first or time.perf_counter() - started
                if event["type"] == "response.completed":
                    previous = event["response"]["id"]
                    break
            sent.append((len(text.encode()), first))
    return sent


def upstream_bytes(pool: Pool) -> list[int]:
    return [len(r.raw) for r in pool.upstream.codex_requests()]


def table(http: list[tuple[int, float]], http_up: list[int], ws: list[tuple[int, float]], ws_up: list[int]
          ) -> str:
    rows = ["| request | HTTP: bytes sent / received upstream | HTTP: first byte | WebSocket: bytes sent / "
            "received upstream | WebSocket: first message |", "| --- | --- | --- | --- | --- |"]
    for n, ((hb, ht), hu, (wb, wt), wu) in enumerate(zip(http, http_up, ws, ws_up, strict=True), 1):
        if n in (1, 2, 5, 10, 15, 20) or n == len(http):
            rows.append(f"| {n} | {hb / 1024:,.0f} kB / {hu / 1024:,.0f} kB | {ht * 1000:.1f} ms | "
                        f"{wb / 1024:,.1f} kB / {wu / 1024:,.1f} kB | {wt * 1000:.1f} ms |")
    http_median = statistics.median(t for _, t in http) * 1000
    ws_median = statistics.median(t for _, t in ws) * 1000
    rows.append(f"| all {len(http)} | {sum(b for b, _ in http) / 1048576:.1f} MB / "
                f"{sum(http_up) / 1048576:.1f} MB | median {http_median:.1f} ms"
                f" | {sum(b for b, _ in ws) / 1048576:.2f} MB / {sum(ws_up) / 1048576:.2f} MB | median "
                f"{ws_median:.1f} ms |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--step-kb", type=int, default=50)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    steps = growth(args.requests, args.step_kb * 1024)
    with tempfile.TemporaryDirectory() as home:
        os.environ["CODEX_POOL_HOME"] = home
        with running_pool(["a", "b"], config={"max-body-mb": 64}) as pool:
            http = over_http(pool, steps)
            http_up = upstream_bytes(pool)
        os.environ["CODEX_POOL_HOME"] = home + "/ws"
        with running_pool(["a", "b"], config={"max-body-mb": 64}) as pool:
            ws = over_socket(pool, steps)
            ws_up = upstream_bytes(pool)
    body = table(http, http_up, ws, ws_up)
    print(body)
    if args.write_docs:
        load = os.getloadavg()[0]
        intro = (f"Measured by `tests/bench/bench_websocket.py` on {time.strftime('%Y-%m-%d')} "
                 f"({os.cpu_count()} CPUs, Python {platform.python_version()}): one conversation of "
                 f"{args.requests} requests "
                 f"growing by {args.step_kb} kB of new input each (the last context is about "
                 f"{args.requests * args.step_kb / 1024:.1f} MB), through a codex-pool engine to the fake "
                 "backend on loopback, once over HTTP (every request carries the whole context, as Codex "
                 "CLI sends it) and once over the WebSocket (the first request whole, then only the new "
                 "input with `previous_response_id`, as Codex CLI does on one socket). Bytes are the JSON "
                 "the client sent and the backend received (before the WebSocket's permessage-deflate, "
                 "which shrinks them further on the wire); the first byte / message is the client's wait "
                 f"for the answer to start. Load average at the end: {load:.1f}.\n\n")
        outro = ("\n\nOver the user's connection to the backend the WebSocket saves the upload of the whole "
                 "context on every request of a turn; on loopback the time to the first byte shows only "
                 "the proxy's share (reading and forwarding the body), which grows with the body over "
                 "HTTP and stays flat over the socket.\n\nRun it again with "
                 "`.venv/bin/python -m tests.bench.bench_websocket --write-docs`.")
        write_section(ROOT / "docs" / "performance.md", "Responses over WebSocket", intro + body + outro)


if __name__ == "__main__":
    main()
