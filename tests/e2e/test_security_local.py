"""Attacks by other local users and by whoever gets hold of a management credential: pointing the
pool's tokens at another server, squatting the proxy's port while codex-pool is down, and
poking the tray's single-instance socket. Where the attack needs a second user, the test creates one
and runs the attacker as that user."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.fakes.runner import ServerThread, serving
from tests.support.attacks import run_as, second_user, stop
from tests.support.proxykit import Pool, running_pool, write_config
from tray.api.owner import probe
from tray.cli import main
from tray.paths import api_key, resolve_paths, ui_token

ROOT = Path(__file__).resolve().parents[2]


class Collector:
    """A server that records what it is sent (the attacker's "upstream")."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        self.seen.append((request.url.path, request.headers.get("authorization", "")))
        await JSONResponse({"ok": True})(scope, receive, send)


@pytest.fixture
def evil() -> Iterator[tuple[Collector, ServerThread]]:
    collector = Collector()
    with serving(collector) as server:
        yield collector, server


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_pool(["a"]) as running:
        yield running


def fetch_usage(pool: Pool) -> None:
    quota, account = pool.engine.quota, pool.account("a")
    assert quota is not None

    async def load() -> object:
        return await quota.load(account, force=True)

    pool.engine.submit(load()).result(15)


def test_the_management_api_cannot_send_the_tokens_elsewhere(
    pool: Pool, evil: tuple[Collector, ServerThread]
) -> None:
    collector, server = evil
    path = pool.engine.paths.config_file
    before = path.read_text()
    with httpx.Client(base_url=pool.url + "/api", headers={"X-Codex-Pool-Token": pool.engine.ui_token},
                      trust_env=False) as api:
        for key, value in (("upstream-url", f"{server.url}/backend-api"), ("auth-url", server.url),
                           ("upstream-proxy", server.url)):
            answer = api.put("/settings", json={"values": {key: value}})
            assert answer.status_code == 403, answer.text
            assert "config.toml" in answer.json()["problems"][key]
            assert path.read_text() == before
        # The window sends every field back on save: an unchanged value is not a change.
        same = api.put("/settings", json={"values": {"upstream-url": pool.engine.config.upstream_url,
                                                     "sticky-mode": "disabled"}})
        assert same.status_code == 200, same.text
    assert pool.post().status_code == 200
    fetch_usage(pool)
    assert collector.seen == []


def test_an_edited_upstream_url_waits_for_a_restart_and_is_logged(
    pool: Pool, evil: tuple[Collector, ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    collector, server = evil
    caplog.set_level(logging.WARNING, logger="tray")
    real = pool.engine.config.upstream_url
    values = {"upstream-url": f"{server.url}/backend-api", "auth-url": server.url, "sticky-mode": "disabled"}
    write_config(pool.engine.paths.config_dir, values)
    pool.engine.reload_config()
    assert pool.engine.config.sticky_mode == "disabled"  # other keys apply at once
    assert pool.engine.config.upstream_url == real
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("upstream-url" in w and server.url in w and "restart" in w for w in warnings), warnings
    assert any("auth-url" in w and server.url in w for w in warnings), warnings
    assert pool.post().status_code == 200
    fetch_usage(pool)
    assert collector.seen == []


# ---- a squatter on the proxy's port ----------------------------------------------------------------

SQUATTER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        print(json.dumps({"line": self.requestline, "headers": dict(self.headers), "body": body}), flush=True)
        # Whatever a proxy might answer, with made-up values.
        fake = {"nonce": "n" * 24, "proof": "0" * 64, "code": "cpc-squatter", "status": "ok"}
        reply = json.dumps(fake).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    do_GET = do_POST = do_PUT = answer
    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("listening", flush=True)
server.serve_forever()
"""

RELAY = r"""
import socket, sys, threading

def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        b.close()

listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen()
print("listening", flush=True)
while True:
    client, _ = listener.accept()
    upstream = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
"""


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


@contextmanager
def squatting(code: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``code`` run as another local user, listening on a free port (the pool's configured port)."""
    port = free_port()
    with second_user() as user:
        proc = run_as(user, code, str(port), *args)
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "listening", stop(proc)
            yield proc, port
        finally:
            stop(proc)


def test_status_and_setup_give_a_port_squatter_nothing(pool_home: Path, isolated_home: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    paths = resolve_paths().ensure()
    key, token = api_key(paths), ui_token(paths)
    with squatting(SQUATTER) as (squatter, port):
        paths.config_file.write_text(f"port = {port}\n")
        assert main(["status"]) == 1
        text = capsys.readouterr().out
        assert f"port {port} is held by another program (pid {squatter.pid}: " in text, text
        assert main(["status", "--json"]) == 1
        data = json.loads(capsys.readouterr().out)
        assert data["api_key"] is None and data["ui_url"] is None and data["running"] is False
        assert main(["setup", "codex"]) == 1
        assert main(["setup", "opencode", "--print"]) == 1
        said = capsys.readouterr()
        assert f"port {port} is held by another program" in said.err
        for shown in (text, json.dumps(data), said.out, said.err):
            assert key not in shown and token not in shown and "cpc-" not in shown
        assert not (isolated_home / ".codex" / "config.toml").exists()
        serve = subprocess.run([sys.executable, "-m", "tray", "serve"], cwd=ROOT, capture_output=True,
                               text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert serve.returncode != 0 and f"(pid {squatter.pid}: " in serve.stderr, serve.stderr
        received, _ = stop(squatter)
    assert "/api/owner/hello" in received  # it was asked, and given nothing to keep
    assert key not in received and token not in received and "/api/owner/code" not in received


def test_a_squatter_relaying_to_the_real_proxy_fails_the_port_binding(pool: Pool) -> None:
    real_port = int(pool.url.rsplit(":", 1)[1])
    token = pool.engine.ui_token
    assert probe(pool.url, token).state == "ours"
    with squatting(RELAY, str(real_port)) as (relay, port):
        relayed = probe(f"http://127.0.0.1:{port}", token, want_code=True)
        assert relayed.state == "other" and relayed.code is None
        assert relayed.holder is not None and relayed.holder.pid == relay.pid
