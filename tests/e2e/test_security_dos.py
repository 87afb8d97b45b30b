"""Stalling the proxy without the key: idle and slow connections, huge or countless headers, more
connections than the process can hold, and a process started with a small open-files limit (the
macOS default of 256) or with core dumps on. Each attack runs on loopback, bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.attacks import closed_by_peer, raw_http, read_answer, request
from tests.support.proxykit import Pool, running_pool
from tray.proxy.limits import Limits
from tray.server import ServerThread

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 30.0  # seconds any one wait may take; the limits themselves are a few seconds


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_pool(["a"]) as running:
        yield running


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_idle_and_half_sent_connections_are_closed_and_real_requests_still_work(pool: Pool) -> None:
    port = port_of(pool.url)
    idle = [connect(port) for _ in range(40)]
    half = [connect(port) for _ in range(10)]
    for sock in half:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
    try:
        assert pool.post().status_code == 200  # served meanwhile
        deadline = time.monotonic() + DEADLINE
        assert all(closed_by_peer(sock, deadline) for sock in idle + half)
    finally:
        for sock in idle + half:
            sock.close()


def test_an_idle_keep_alive_connection_is_closed(pool: Pool) -> None:
    port = port_of(pool.url)
    with connect(port) as sock:
        sock.sendall(request("GET", "/healthz", [("Host", f"127.0.0.1:{port}")]))
        answer = read_answer(sock, time.monotonic() + 10)
        assert answer is not None and answer.status == 200
        assert closed_by_peer(sock, time.monotonic() + DEADLINE)


@pytest.mark.parametrize("size", [70 * 1024, 64 * 1024 * 1024])
def test_huge_headers_are_refused_with_431_after_the_limit(pool: Pool, size: int) -> None:
    port = port_of(pool.url)
    with connect(port) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: ".encode())
        piece, sent = b"a" * 65536, 0
        with contextlib.suppress(OSError):  # the proxy stops reading after its limit
            while sent < size:
                sock.sendall(piece)
                sent += len(piece)
            sock.sendall(b"\r\n\r\n")
        answer = read_answer(sock, time.monotonic() + DEADLINE)
    assert answer is not None and answer.status == 431, answer
    assert pool.post().status_code == 200


def test_too_many_headers_are_refused_with_431(pool: Pool) -> None:
    port = port_of(pool.url)
    host, close = ("Host", f"127.0.0.1:{port}"), ("Connection", "close")
    headers = [host, *((f"X-H{i}", "x") for i in range(500)), close]
    answer = raw_http(port, request("GET", "/healthz", headers))
    assert answer is not None and answer.status == 431
    fine = [host, *((f"X-H{i}", "x") for i in range(40)), close]
    ok = raw_http(port, request("GET", "/healthz", fine))
    assert ok is not None and ok.status == 200


async def hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


def test_connections_past_the_cap_get_503_and_service_comes_back() -> None:
    server = ServerThread(Starlette(routes=[Route("/", hello)]), "127.0.0.1", 0,
                          limits=Limits(max_connections=8)).start()
    held: list[socket.socket] = []
    try:
        held = [connect(server.port) for _ in range(8)]
        extra = connect(server.port)
        answer = read_answer(extra, time.monotonic() + DEADLINE)
        extra.close()
        assert answer is not None and answer.status == 503 and answer.headers.get("retry-after")
        refused = httpx.get(server.url, trust_env=False, timeout=10)
        assert refused.status_code == 503
        for sock in held:
            sock.close()
        deadline = time.monotonic() + DEADLINE
        while httpx.get(server.url, trust_env=False, timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the proxy never served again"
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()
        server.stop()


def limits_of(pid: int) -> dict[str, tuple[str, str]]:
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        match = re.match(r"(.+?)\s{2,}(\S+)\s+(\S+)", line)
        if match:
            found[match.group(1)] = (match.group(2), match.group(3))
    return found


def test_a_small_open_files_limit_is_raised_and_core_dumps_are_off(pool_home: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def as_on_macos() -> None:  # a low soft limit under a higher hard one, and core dumps allowed
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tray", "serve", "--port", "0"], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_on_macos)
    idle: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        url = line.split("listening on", 1)[1].strip()
        limits = limits_of(proc.pid)
        assert limits["Max core file size"][0] == "0"
        assert int(limits["Max open files"][0]) > 300
        idle = [connect(port_of(url)) for _ in range(300)]
        assert httpx.get(url + "/healthz", trust_env=False, timeout=20).status_code == 200
    finally:
        for sock in idle:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err
