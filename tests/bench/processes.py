"""The processes a proxy benchmark runs: the fake backend (``tests.bench.fake_backend``) and
``codex-pool serve`` in a pool home made for the run, each in its own process on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]

from tray.models import Identity, TokenSet
from tray.paths import api_key, resolve_paths
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fake_backend(tokens: dict[str, str], deltas: int, delta_size: int) -> Iterator[tuple[str, int]]:
    """The fake backend serving ``tokens``' accounts; yields its URL and process id."""
    args = [sys.executable, "-m", "tests.bench.fake_backend", "--deltas", str(deltas), "--exact", "--forget"]
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
    """``codex-pool serve`` on ``port`` for the pool in ``home``, once it answers /healthz."""
    env = {**os.environ, "CODEX_POOL_HOME": str(home)}
    args = [sys.executable, "-m", "tray", "serve", "--port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
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


