"""Naming the program that holds a port (tray/portholder.py): the parsers on each OS's text, and the
Linux lookup on a real socket."""

from __future__ import annotations

import os
import socket

import pytest

from tray.portholder import Holder, held_message, holder, parse_lsof, parse_netstat, parse_proc_net_tcp

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1167 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 424242 1 0
   1: 0100007F:1167 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 515151 1 0
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 616161 1 0
"""
LSOF = "p812\ncnc\nLbob\nf3\np900\ncother\n"
NETSTAT = """
Active Connections

  Proto  Local Address          Foreign Address        State           PID
  TCP    0.0.0.0:135            0.0.0.0:0              LISTENING       1000
  TCP    127.0.0.1:4455         0.0.0.0:0              LISTENING       812
  TCP    127.0.0.1:4455         127.0.0.1:50000        ESTABLISHED     812
"""


def test_parsers() -> None:
    assert parse_proc_net_tcp(PROC_NET_TCP, 4455) == [(424242, 1001)]  # listening only, not the connection
    assert parse_proc_net_tcp(PROC_NET_TCP, 9) == []
    assert parse_lsof(LSOF) == Holder(812, "nc", "bob")
    assert parse_lsof("") is None
    assert parse_netstat(NETSTAT, 4455) == 812 and parse_netstat(NETSTAT, 9) is None


def test_messages() -> None:
    assert held_message(4455, Holder(812, "nc")) == "port 4455 is held by another program (pid 812: nc)"
    by_user = held_message(4455, Holder(user="bob"))
    assert by_user == "port 4455 is held by another program (a program of user bob)"
    assert held_message(4455, None) == "port 4455 is held by another program"


def test_finds_this_process_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        found = holder(sock.getsockname()[1])
    assert found is not None and found.pid == os.getpid()


def test_a_process_is_alive_until_it_has_exited() -> None:
    import subprocess
    import sys

    from tray.portholder import process_alive

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert process_alive(child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert not process_alive(child.pid)
    assert not any(process_alive(pid) for pid in (0, -1, "12", True, None))


class FakeKernel32:
    """Windows' OpenProcess / GetExitCodeProcess / CloseHandle over a table of processes; refuses
    OpenProcess for pids in ``denied`` (another user's or an elevated process) like Windows does."""

    def __init__(self, running: dict[int, int], denied: frozenset[int] = frozenset()) -> None:
        self.running = running  # pid -> exit code (259 = STILL_ACTIVE)
        self.denied = denied
        self.open_handles: set[int] = set()

    def open(self, pid: int) -> tuple[int | None, int]:
        if pid in self.denied:
            return None, 5  # ERROR_ACCESS_DENIED
        if pid not in self.running:
            return None, 87  # ERROR_INVALID_PARAMETER: no such process
        handle = 1000 + pid
        self.open_handles.add(handle)
        return handle, 0

    def exit_code(self, handle: int) -> int | None:
        return self.running[handle - 1000]

    def close(self, handle: int) -> None:
        self.open_handles.remove(handle)


def test_the_windows_liveness_check_asks_for_the_exit_code_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Windows os.kill(pid, 0) sends CTRL_C_EVENT: the check must never call it."""
    import os

    from tray.portholder import process_alive

    def no_kill(pid: int, sig: int) -> None:
        raise AssertionError("os.kill must not be called on Windows")

    monkeypatch.setattr(os, "kill", no_kill)
    kernel = FakeKernel32({40: 259, 41: 0}, denied=frozenset({42}))
    assert process_alive(40, "win32", api=kernel)  # running
    assert not process_alive(41, "win32", api=kernel)  # exited, handle still held by someone
    assert process_alive(42, "win32", api=kernel)  # exists, but not ours to open
    assert not process_alive(43, "win32", api=kernel)  # no such process
    assert kernel.open_handles == set()  # every handle closed
