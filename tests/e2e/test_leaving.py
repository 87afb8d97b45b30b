"""End to end: someone leaves. A client that hangs up before the first output stops the failover (no
other account's quota is spent for nobody); an upstream that drops the stream after output started
shows as a failure in the activity view, while what the commit recorded stays."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.proxykit import CODEX_HEADERS, Pool, codex_body, replies, running_pool


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def raw_post(pool: Pool) -> socket.socket:
    """Send a Codex request on a bare socket (so the test can hang up at any moment)."""
    body = json.dumps(codex_body()).encode()
    port = pool.engine.server.port  # type: ignore[union-attr]
    head = ["POST /backend-api/codex/responses HTTP/1.1", f"Host: 127.0.0.1:{port}",
            f"Authorization: Bearer {pool.engine.api_key}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in CODEX_HEADERS.items())]
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return sock


def test_a_client_that_leaves_before_the_first_output_stops_the_failover() -> None:
    gate = threading.Event()
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.server_error(500).but(hold=gate))
        sock = raw_post(pool)
        wait_for(lambda: len(pool.upstream.codex_requests("a")) == 1, "a to get the request")
        sock.close()
        try:
            wait_for(lambda: pool.upstream.disconnects == 1, "the proxy to abandon a's answer")
        finally:
            gate.set()
        wait_for(lambda: bool(pool.engine.store.decisions(1)), "the request to be recorded")
        decision = pool.engine.store.decisions(1)[0]
        assert "client went away" in decision.reason
        assert pool.upstream.codex_requests("b") == []
        assert pool.cooldown_until("a") is None  # nobody's fault: the client left
        assert pool.post().status_code == 200


def test_a_mid_stream_drop_is_a_failure_in_the_activity_view() -> None:
    with running_pool(["a", "b"]) as pool, pool.client() as client:
        pool.upstream.script("a", replies.drop(after=6))
        with pytest.raises(httpx.RemoteProtocolError), client.stream(
            "POST", "/backend-api/codex/responses", json=codex_body()
        ) as response:
            assert response.status_code == 200 and pool.served_by(response) == "a"
            for _ in response.iter_bytes():
                pass
        pool.wait_bookkeeping()
        dropped = pool.engine.store.decisions(1)[0]
        assert dropped.account_name == pool.account("a").name
        assert dropped.status is not None and dropped.status >= 400
        assert "dropped" in dropped.reason
        # What the commit wrote stays: a is not cooled down and keeps serving.
        assert pool.cooldown_until("a") is None
        # A complete answer is still recorded as a success, once it has ended.
        answer = client.post("/backend-api/codex/responses", json=codex_body())
        assert answer.status_code == 200 and pool.served_by(answer) == "a"
        pool.wait_bookkeeping()
        assert pool.engine.store.decisions(1)[0].status == 200
