from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import ServerThread, serving
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake() -> FakeAuth:
    return FakeAuth()


@pytest.fixture
def server(fake: FakeAuth, pool_home: Path) -> Iterator[ServerThread]:
    with serving(fake.app) as running:
        pool_home.mkdir(parents=True, exist_ok=True)
        (pool_home / "config.toml").write_text(f'auth-url = "{running.url}"\n')
        yield running


def start_login(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tray", "login", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_code(proc: subprocess.Popen[str]) -> tuple[str, str]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "enter this code:" in line, line
    url = line.split("Open ", 1)[1].split(" ", 1)[0]
    return url, line.rsplit(":", 1)[1].strip()


def test_device_login_can_be_scripted(fake: FakeAuth, server: ServerThread, pool_home: Path) -> None:
    proc = start_login("--device")
    url, code = read_code(proc)
    assert url == server.url + "/codex/device"
    fake.approve(code, FakeUser("acc-9", "user-9", "nine@example.com", "pro"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Added nine@example.com (pro, primary)." in out
    with Store.open(pool_home / "pool.db") as store:
        [account] = store.accounts()
    assert account.email == "nine@example.com" and account.primary
    for secret in (account.tokens.access_token, account.tokens.refresh_token):
        assert secret not in out + err


def test_second_device_login_with_primary_moves_it_first(
    fake: FakeAuth, server: ServerThread, pool_home: Path
) -> None:
    for user, extra in (
        (FakeUser("a", "one", "one@example.com"), ()),
        (FakeUser("b", "two", "two@example.com"), ("--primary",)),
    ):
        proc = start_login("--device", *extra)
        fake.approve(read_code(proc)[1], user)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert "Added two@example.com (plus, primary)." in out
    with Store.open(pool_home / "pool.db") as store:
        assert [a.email for a in store.accounts()] == ["two@example.com", "one@example.com"]


def test_denied_device_login_fails_with_one_line(fake: FakeAuth, server: ServerThread) -> None:
    proc = start_login("--device")
    fake.deny(read_code(proc)[1])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().count("\n") == 0 and err.startswith("codex-pool: Device authorization failed")
    assert "Traceback" not in err


def test_browser_login_prints_the_link_and_finishes_when_the_browser_comes_back(
    fake: FakeAuth, server: ServerThread, pool_home: Path
) -> None:
    with socket.socket() as probe:
        # As the login's own server does: a connection an earlier test left in TIME_WAIT on this
        # port must not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 1455))
        except OSError:
            pytest.skip("port 1455 is in use on this machine (a login may be waiting there)")
    proc = start_login("--no-browser")
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(2)]
    url = lines[1].strip()
    assert url.startswith(server.url + "/oauth/authorize?") and "localhost%3A1455" in url
    page = httpx.get(url, follow_redirects=True, timeout=30)  # the user's browser
    out, err = proc.communicate(timeout=60)
    assert page.status_code == 200 and "signed in" in page.text.lower()
    assert proc.returncode == 0, err
    assert "Added one@example.com (plus, primary)." in out
