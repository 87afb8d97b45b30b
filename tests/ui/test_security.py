"""Attacks from a web page in the user's browser (DNS rebinding, framing, confused redirects) and
malformed requests to the management door, against a running proxy over loopback."""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.attacks import raw_http, read_answer, request
from tests.support.proxykit import Pool, running_pool

EVIL = "evil.example"


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    mp = pytest.MonkeyPatch()
    with tempfile.TemporaryDirectory(prefix="codex-pool-web-") as tmp:
        for var, sub in (("HOME", "home"), ("CODEX_HOME", "home/.codex"), ("XDG_CONFIG_HOME", "home/.config"),
                         ("XDG_DATA_HOME", "home/.local/share"), ("CODEX_POOL_HOME", "pool")):
            mp.setenv(var, str(Path(tmp) / sub))
        try:
            with running_pool(["a"]) as running:
                yield running
        finally:
            mp.undo()


def port_of(pool: Pool) -> int:
    return int(pool.url.rsplit(":", 1)[1])


def test_slashless_ui_and_api_check_the_host_before_redirecting(pool: Pool) -> None:
    port = port_of(pool)
    for path in ("/ui", "/api"):
        foreign = raw_http(port, request("GET", path, [("Host", f"{EVIL}:{port}"), ("Connection", "close")]))
        assert foreign is not None and foreign.status == 403, path
        assert "location" not in foreign.headers and EVIL.encode() not in foreign.body
        own = raw_http(port, request("GET", path, [("Host", f"127.0.0.1:{port}"), ("Connection", "close")]))
        assert own is not None and own.status in (307, 308) and EVIL not in own.headers["location"]


def test_healthz_does_not_answer_a_rebinding_page(pool: Pool) -> None:
    port = port_of(pool)
    rebound = httpx.get(pool.url + "/healthz", headers={"Host": f"{EVIL}:{port}"}, trust_env=False)
    assert rebound.status_code == 403 and "ok" not in rebound.text
    foreign_page = httpx.get(pool.url + "/healthz", headers={"Origin": f"http://{EVIL}"}, trust_env=False)
    assert foreign_page.status_code == 403
    assert httpx.get(pool.url + "/healthz", trust_env=False).json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/ui/", "/api/status", "/v1/models", "/nowhere"])
def test_a_second_host_or_origin_header_is_refused(pool: Pool, path: str) -> None:
    port = port_of(pool)
    creds = [("Authorization", f"Bearer {pool.engine.api_key}"), ("X-Codex-Pool-Token", pool.engine.ui_token)]
    upstream_calls = len(pool.upstream.requests)
    for extra in ([("Host", f"{EVIL}:{port}")], [("Origin", f"http://127.0.0.1:{port}"), ("Origin", f"http://{EVIL}")]):
        answer = raw_http(port, request("GET", path, [("Host", f"127.0.0.1:{port}"), *creds, *extra,
                                                      ("Connection", "close")]))
        assert answer is not None and answer.status == 400, (path, extra, answer)
        assert b"one Host" in answer.body or b"one Origin" in answer.body
    assert len(pool.upstream.requests) == upstream_calls


def test_the_window_page_cannot_be_framed_or_sniffed(pool: Pool) -> None:
    for path in ("/ui/", "/ui/app.js", "/ui/index.html"):
        answer = httpx.get(pool.url + path, trust_env=False)
        assert answer.status_code == 200, path
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("chunked", [False, True])
def test_the_management_api_stops_reading_an_oversized_body(pool: Pool, chunked: bool) -> None:
    port = port_of(pool)
    head = [("Host", f"127.0.0.1:{port}"), ("X-Codex-Pool-Token", pool.engine.ui_token),
            ("Content-Type", "application/json")]
    head += [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(512 * 1024 * 1024))]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request("PUT", "/api/settings", head))
        piece = b"x" * 65536
        # 4 MB, far past the 1 MB limit, and then nothing: the answer must come without the rest.
        for _ in range(64):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        answer = read_answer(sock, time.monotonic() + 20)
    assert answer is not None and answer.status == 413, answer
    assert b"too large" in answer.body
