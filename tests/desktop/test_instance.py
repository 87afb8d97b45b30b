"""One tray per pool: the lock, the loopback channel and its token."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.attacks import run_as, second_user, stop
from tray.desktop.instance import INFO_NAME, Instance, ask_running
from tray.paths import resolve_paths

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from tray.desktop.instance import Instance\n"
    "from tray.paths import resolve_paths\n"
    "i = Instance(resolve_paths())\n"
    "print(i.acquire(), flush=True)\n"
    "sys.stdin.read()\n"
)


def test_only_one_process_holds_the_pool(pool_home: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "True"
        assert Instance(resolve_paths()).acquire() is False
    finally:
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()
    mine = Instance(resolve_paths())
    assert mine.acquire() is True  # the lock died with its process: never stale
    mine.close()


def test_a_second_start_talks_to_the_first(pool_home: Path) -> None:
    paths = resolve_paths()
    first = Instance(paths)
    assert first.acquire()
    asked: list[str] = []
    first.serve(lambda command: asked.append(command) or "ok")
    try:
        info_file = paths.data_dir / INFO_NAME
        assert stat.S_IMODE(info_file.stat().st_mode) == 0o600  # it holds the channel's token
        assert ask_running(paths, "show") == "ok"
        assert asked == ["show"]
        info = json.loads(info_file.read_text())
        with socket.create_connection(("127.0.0.1", info["port"]), timeout=5) as conn:
            conn.sendall(b"not-the-token show\n")
            assert conn.makefile().readline().strip() == "denied"
        assert asked == ["show"]
    finally:
        first.close()
    assert not (paths.data_dir / INFO_NAME).exists()
    assert ask_running(paths, "show", wait=0.5) is None


SILENT = (
    "import socket, sys\n"
    "held = [socket.create_connection(('127.0.0.1', int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]\n"
    "print('connected', flush=True)\n"
    "sys.stdin.read()\n"
)


def test_silent_connections_from_another_user_do_not_delay_a_second_start(pool_home: Path) -> None:
    paths = resolve_paths()
    first = Instance(paths)
    assert first.acquire()
    asked: list[str] = []
    first.serve(lambda command: asked.append(command) or "ok")
    try:
        port = json.loads((paths.data_dir / INFO_NAME).read_text())["port"]
        with second_user() as user:
            squatter = run_as(user, SILENT, str(port), "8")
            try:
                assert squatter.stdout is not None and squatter.stdout.readline().strip() == "connected"
                # Eight connections that never speak (each used to hold the channel for 3 s in turn).
                assert ask_running(paths, "show", wait=8) == "ok"
                assert asked == ["show"]
            finally:
                stop(squatter)
    finally:
        first.close()
