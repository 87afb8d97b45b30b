"""Two ``codex-pool serve`` processes on one pool file share cooldowns, the quota cache and the
usage-fetch lease: a 429 seen by one keeps the other off that account, and each account's usage is
fetched once, not once per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.fakes.auth_server import FakeAuth
from tests.fakes.runner import serving
from tests.fakes.upstream import make_chatgpt, replies
from tests.support.proxykit import CODEX_HEADERS, DEFAULT_CONFIG, add_account, codex_body, write_config
from tray.paths import api_key, resolve_paths
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serve_process(home: Path, log: Path) -> Iterator[str]:
    env = {**os.environ, "CODEX_POOL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    with log.open("w") as err, subprocess.Popen(
        [sys.executable, "-m", "tray", "serve", "--port", "0"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=err, text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "listening on " in line, log.read_text()
            yield line.split("listening on ", 1)[1].strip()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, log.read_text()


def post(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/backend-api/codex/responses", json=codex_body(), timeout=30, trust_env=False,
                      headers={**CODEX_HEADERS, "Authorization": f"Bearer {key}"})


def test_two_serve_processes_share_cooldowns_and_usage_leases(tmp_path: Path) -> None:
    chatgpt = make_chatgpt()
    auth, upstream = chatgpt.auth, chatgpt.upstream
    assert isinstance(auth, FakeAuth)
    home = Path(os.environ["CODEX_POOL_HOME"])
    with serving(chatgpt.app) as fake:
        urls = {"upstream-url": f"{fake.url}/backend-api", "auth-url": fake.url}
        write_config(home, {**DEFAULT_CONFIG, **urls})
        paths = resolve_paths().ensure()
        key = api_key(paths)
        with Store.open(paths.db_file) as store:
            for fid in ("a", "b"):
                add_account(store, auth, upstream, fid, {"primary_used": 20.0, "primary_reset_after_s": 9000})
                # Slow usage answers make the two processes' background fetches overlap.
                upstream.script_usage(fid, replies.slow(1.0), replies.slow(1.0))
        with serve_process(home, tmp_path / "1.log") as one, serve_process(home, tmp_path / "2.log") as two:
            results: list[httpx.Response] = []
            threads = [threading.Thread(target=lambda u=u: results.append(post(u, key))) for u in (one, two)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert [r.status_code for r in results] == [200, 200]
            with Store.open(paths.db_file) as store:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and len(store.usages()) < 2:
                    time.sleep(0.05)
                assert len(store.usages()) == 2
            # At most one usage fetch per account across both processes. It can be none: the first
            # answer's x-codex-* headers may fill the cache before a background fetch is needed.
            assert upstream.usage_calls["a"] <= 1 and upstream.usage_calls["b"] <= 1

            # A 429 seen by process one keeps process two off that account.
            first = upstream.codex_requests()[-1].account_id or "a"
            other = "b" if first == "a" else "a"
            upstream.script(first, replies.usage_limit(resets_in=3600))
            before = len(upstream.codex_requests(first))
            assert post(one, key).headers["x-fake-account"] == other
            assert post(two, key).headers["x-fake-account"] == other
            assert len(upstream.codex_requests(first)) == before + 1
