"""``codex-pool serve``: headless in the foreground, stops cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.proxykit import write_config

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tray", "serve", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_serve_prints_the_url_warns_about_config_and_stops_on_sigint(pool_home: Path) -> None:
    write_config(pool_home, {"sticky-strength": -3, "fast-mode": "turbo"})
    with start("--port", "0") as proc:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.split("listening on ", 1)[1].strip()
        assert httpx.get(f"{url}/healthz", trust_env=False).status_code == 200
        assert (pool_home / "instance.json").exists()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert err.count("warning: problems in") == 1
    assert "sticky-strength" in err and "fast-mode" in err
    assert "Traceback" not in err
    assert not (pool_home / "instance.json").exists()
    key = (pool_home / "api-key").read_text().strip()
    assert key not in err and key not in out
    # The same lines went to the log file, which only the user can read.
    log_file = pool_home / "logs" / "codex-pool.log"
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    logged = log_file.read_text(encoding="utf-8")
    assert "proxy listening on http://127.0.0.1:" in logged and key not in logged


def test_serve_on_a_busy_port_says_so_in_one_line(pool_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with start("--port", str(port)) as proc:
            _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert f"Port {port}" in err and "Traceback" not in err


def test_headless_notices_follow_the_switches_once_per_episode(capsys: pytest.CaptureFixture[str]) -> None:
    import time as _time

    from tray.commands.serve import StderrNotices
    from tray.models import Config, Notifications, PoolAvailable, PoolExhausted, QuotaLow

    notices = StderrNotices()
    notices.configure(Config())
    notices(PoolExhausted(soonest_reset=_time.time() + 600))
    notices(PoolExhausted(soonest_reset=_time.time() + 600))
    notices(QuotaLow(1, "work", 4.0))  # quota-low is opt-in
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "pool exhausted until" in err
    notices(PoolAvailable())
    notices.configure(Config(notifications=Notifications(quota_low=True)))
    notices(QuotaLow(2, "work", 4.0))
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 2 and "work" in err
