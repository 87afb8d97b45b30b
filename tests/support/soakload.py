"""The soak's clients: concurrent streaming requests, each answer classified and timed (to the
response headers, the whole answer, and the longest pause between two chunks of a stream)."""

from __future__ import annotations

import asyncio
import json
import random
import time

import httpx

from tests.support.proxykit import CODEX_HEADERS, codex_body
from tests.support.soakreport import GOOD, SoakReport, SoakSettings


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


def error_code(status: int, raw: bytes) -> str | None:
    """``"503 pool_busy"``: the status and the code of a JSON error answer (``None`` for a 200)."""
    if status == 200:
        return None
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return f"{status} (not JSON)"
    code = error.get("code") or error.get("type") if isinstance(error, dict) else None
    return f"{status} {code or '?'}"


class Load:
    def __init__(self, urls: list[str], key: str, settings: SoakSettings, report: SoakReport) -> None:
        self.urls, self.key, self.settings, self.report = urls, key, settings, report
        self.next = 0
        self.done = 0
        self.rng = random.Random(settings.seed)

    async def one(self, client: httpx.AsyncClient, record: bool) -> None:
        headers = {**CODEX_HEADERS, "Authorization": f"Bearer {self.key}",
                   "session-id": f"soak-session-{self.rng.randrange(64)}"}
        started = time.monotonic()
        status, raw, broke, got = 0, b"", False, httpx.Headers()
        first_byte: float | None = None
        stall = 0.0

        async def fetch() -> None:
            nonlocal status, raw, broke, got, first_byte, stall
            async with client.stream("POST", "/backend-api/codex/responses", json=codex_body(),
                                     headers=headers) as response:
                status, got = response.status_code, response.headers
                last = first_byte = time.monotonic()
                try:
                    async for chunk in response.aiter_raw():
                        now = time.monotonic()
                        stall, last = max(stall, now - last), now
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
        if not record:
            return
        report = self.report
        report.outcomes[outcome] += 1
        report.statuses[status] += 1
        report.latencies.append(time.monotonic() - started)
        if first_byte is not None:
            report.first_bytes.append(first_byte - started)
        if status == 200:
            report.stalls.append(stall)
        code = error_code(status, raw)
        if code is not None and status:
            report.error_codes[code] += 1
        if outcome not in GOOD:
            report.examples.setdefault(outcome, f"status {status}: {raw[-300:]!r}")
        if status != 200 and len(report.error_bodies) < 2000:
            report.error_bodies.append(raw.decode("utf-8", "replace"))

    async def worker(self, index: int, total: int, record: bool) -> None:
        url = self.urls[index % len(self.urls)]
        async with httpx.AsyncClient(base_url=url, timeout=self.settings.timeout, trust_env=False) as client:
            while self.next < total:
                self.next += 1
                await self.one(client, record)
                self.done += 1
                if record and self.settings.think:
                    await asyncio.sleep(self.rng.uniform(0, 2 * self.settings.think))

    async def run(self, total: int, record: bool) -> None:
        self.next = self.done = 0
        await asyncio.gather(*(self.worker(i, total, record) for i in range(self.settings.clients)))
