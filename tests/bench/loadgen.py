"""The proxy benchmark's load generator: a minimal asyncio HTTP/1.1 client, so it costs little next
to either server, and the figures it takes (time to first byte, CPU seconds of a process, RSS)."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]


@dataclass(frozen=True)
class Fetch:
    ttfb: float  # seconds from sending the request to the first body byte
    total: float  # seconds until the connection closed
    size: int  # bytes received
    complete: bool  # the answer ended with response.completed


@dataclass
class Target:
    """One server to send the benchmark's request to: the fake backend directly, or the proxy."""

    name: str
    port: int
    path: str
    auth: str
    headers: list[tuple[str, str]] = field(default_factory=list)  # besides Authorization and framing
    body: bytes = b""
    last_failure: str = ""  # the head of the last answer that was not a complete 200 stream

    def _head(self) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                 f"Authorization: Bearer {self.auth}"]
        names = {name.lower() for name, _ in self.headers}
        lines += [f"{name}: {value}" for name, value in self.headers]
        if "content-type" not in names:
            lines.append("Content-Type: application/json")
        if "accept" not in names:
            lines.append("Accept: text/event-stream")
        lines += [f"Content-Length: {len(self.body)}", "Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1")

    async def fetch(self) -> Fetch:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = self._head()
        started = time.perf_counter()
        writer.write(head)
        writer.write(self.body)
        status_and_headers = await reader.readuntil(b"\r\n\r\n")
        chunks = [await reader.read(65536)]
        first = time.perf_counter()
        while chunk := await reader.read(65536):
            chunks.append(chunk)
        done = time.perf_counter()
        writer.close()
        body = b"".join(chunks)
        ok = status_and_headers.split(b" ", 2)[1] == b"200" and b"event: response.completed" in body
        if not ok:
            self.last_failure = (status_and_headers + body[:2000]).decode("latin-1")
        return Fetch(first - started, done - started, len(status_and_headers) + len(body), ok)


async def concurrent_round(target: Target, streams: int) -> tuple[float, list[Fetch]]:
    """``streams`` requests at once; the wall time until the last answer ended, and the answers."""
    started = time.perf_counter()
    results = await asyncio.gather(*(target.fetch() for _ in range(streams)))
    return time.perf_counter() - started, list(results)


async def sample_rss(proc: psutil.Process, peak: list[int], stop: asyncio.Event) -> None:
    """Keep ``peak[0]`` at the largest RSS ``proc`` had until ``stop`` is set."""
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        await asyncio.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class CpuMeter:
    """CPU seconds several processes spent, summed per label across the spans measured."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.spent: dict[str, dict[str, float]] = {}

    def start(self) -> dict[str, float]:
        return {who: cpu_seconds(p) for who, p in self.procs.items()}

    def stop(self, label: str, before: dict[str, float]) -> None:
        spent = self.spent.setdefault(label, dict.fromkeys(self.procs, 0.0))
        for who, proc in self.procs.items():
            spent[who] += cpu_seconds(proc) - before[who]

    def per(self, label: str, who: str, count: int) -> float:
        """Milliseconds of CPU ``who`` spent per request under ``label``."""
        return self.spent.get(label, {}).get(who, 0.0) / max(1, count) * 1000

    def all_per(self, label: str, count: int) -> float:
        return sum(self.spent.get(label, {}).values()) / max(1, count) * 1000
