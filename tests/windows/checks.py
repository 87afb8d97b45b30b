"""Checks that only mean something on Windows, run on real Windows CPython by tests/test_wine.py
(``python.exe -m pytest tests/windows/checks.py`` under Wine; the Linux suite does not collect this
file). Each one exercises the Windows branch of a platform seam with the real system calls: file
sharing, kernel32, Winsock's exclusive binds, ``WCHAR[128]`` and the registry.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tray.autostart import texts
from tray.autostart._windows import RUN_KEY, WindowsAutostart, WinRegistry
from tray.desktop.backend import fit_tooltip
from tray.paths import write_atomic
from tray.portholder import bind_refusal, prepare_listener, process_alive

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="runs on Windows (tests/test_wine.py)")

HOLDER = """
import sys, time
with open(sys.argv[1]) as fh:  # Python opens without FILE_SHARE_DELETE: nobody may replace it now
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_this_is_windows_python_without_fchmod() -> None:
    assert sys.platform == "win32" and os.name == "nt"
    assert not hasattr(os, "fchmod")  # Python 3.11 on Windows; 3.13 added it


def test_a_file_another_process_holds_open_is_replaced_once_it_lets_go(tmp_path: Path) -> None:
    """Codex CLI reading auth.json while the pool writes it back: Windows refuses the replace with
    a sharing violation until the reader closes the file; the write waits and then lands."""
    target = tmp_path / "auth.json"
    target.write_text("old\n")
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(target), "0.5"], stdout=subprocess.PIPE,
                          text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        started = time.monotonic()
        write_atomic(target, '{"tokens": {}}\n', keep_mode=True)
        waited = time.monotonic() - started
        assert holder.wait(10) == 0
    assert target.read_bytes() == b'{"tokens": {}}\n'  # no "\r\n": written in binary mode
    assert waited > 0.1  # it really was held, and waited out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auth.json"]


def test_a_hold_that_outlasts_the_retries_fails_and_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("old = 1\n")
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(target), "6"], stdout=subprocess.PIPE,
                          text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(PermissionError) as err:
            write_atomic(target, "new = 1\n")
        holder.kill()
    assert getattr(err.value, "winerror", None) in (5, 32)
    assert target.read_text() == "old = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_liveness_asks_kernel32_and_sends_no_ctrl_c() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert process_alive(child.pid)
        assert process_alive(os.getpid())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert child.returncode == 0  # it ended by itself: no CTRL_C_EVENT reached it
    assert not process_alive(child.pid)


def test_the_proxy_port_is_exclusive_and_a_second_bind_is_in_use() -> None:
    ours = socket.socket()
    prepare_listener(ours)
    ours.bind(("127.0.0.1", 0))
    ours.listen(1)
    port = ours.getsockname()[1]
    try:
        assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE) == 1
        second = socket.socket()
        prepare_listener(second)
        with pytest.raises(OSError) as err:
            second.bind(("127.0.0.1", port))
        second.close()
        assert bind_refusal(err.value) == "in use" and err.value.winerror == 10048  # type: ignore[attr-defined]
        hijack = socket.socket()  # another program trying to bind on top of ours
        hijack.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError) as refused:
            hijack.bind(("127.0.0.1", port))
        hijack.close()
        assert refused.value.winerror == 10013  # type: ignore[attr-defined]
        assert bind_refusal(refused.value) == "reserved"
    finally:
        ours.close()


def test_a_fitted_tooltip_fits_szTip_and_an_unfitted_one_does_not() -> None:
    tip = "codex-pool: healthy\n" + "🙂" * 60  # 20 + 120 UTF-16 units in 80 characters
    buffer = (ctypes.c_wchar * 128)()
    with pytest.raises(ValueError):
        buffer.value = tip
    buffer.value = fit_tooltip(tip, "win32")


def test_start_at_login_writes_reads_and_removes_the_run_value() -> None:
    registry = WinRegistry()
    entry = WindowsAutostart(registry, [r"C:\Program Files\codex-pool\codex-pool-tray.exe"],
                             name="codex-pool-test")
    try:
        entry.enable()
        assert entry.enabled()
        assert registry.read(RUN_KEY, "codex-pool-test") == texts.windows_run_value(entry.command)
    finally:
        entry.disable()
    assert not entry.enabled()
    assert registry.read(RUN_KEY, "codex-pool-test") is None


def test_the_users_codex_login_is_written_back_without_fchmod(tmp_path: Path) -> None:
    """The write that lost logins on Windows 3.11/3.12 (os.fchmod raised AttributeError, nothing
    was written, a temp file stayed, and Codex CLI kept a refresh token the pool had spent)."""
    import json

    from tray.auth.files import _write_atomic

    target = tmp_path / "auth.json"
    target.write_text('{"auth_mode": "chatgpt", "tokens": {"refresh_token": "rt_old"}}')
    _write_atomic(target, {"auth_mode": "chatgpt", "tokens": {"refresh_token": "rt_new"}})
    assert json.loads(target.read_text())["tokens"]["refresh_token"] == "rt_new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auth.json"]


def test_the_toast_app_id_is_registered_for_the_user(tmp_path: Path) -> None:
    """Windows drops toasts from an app id it does not know: the id gets a name and an icon."""
    import winreg

    from tray.notices.delivery import APP_ID_KEY, register_app_id

    icon = tmp_path / "codex-pool.png"
    register_app_id(icon)
    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, APP_ID_KEY) as key:
            assert winreg.QueryValueEx(key, "DisplayName")[0] == "codex-pool"
            assert winreg.QueryValueEx(key, "IconUri")[0] == str(icon)
    finally:
        winreg.DeleteKey(winreg.HKEY_CURRENT_USER, APP_ID_KEY)


def test_a_custom_pool_folder_is_created_and_made_private(tmp_path: Path) -> None:
    from tray.paths import resolve_paths

    made = resolve_paths({"CODEX_POOL_HOME": str(tmp_path / "pool")}).ensure()
    assert made.custom and made.data_dir.is_dir() and made.backup_dir.is_dir()
