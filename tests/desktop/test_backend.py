"""The tray backend's door and limits (tray/desktop/backend.py): every change to the icon runs on the
backend's own thread, whichever thread asked, and a Windows menu open on screen is never rebuilt
under the user's pointer; tooltips fit Windows' ``WCHAR[128]``."""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tray.desktop.backend import Win32Dispatcher, fit_tooltip, tooltip_units
from tray.desktop.menu import Action, MenuItem, MenuModel

LONG_EMAIL = "a.very.long.name.for.a.work.account+codex-pool@example-company.com"
TOOLTIP = "\n".join([
    "codex-pool: some accounts need attention",
    "http://127.0.0.1:4466",
    "Pool: 5h 62% · weekly 40% · 5h runs out 15:40, before the 16:10 reset",
    f"Last: {LONG_EMAIL}, higher score → 200 (just now)",
])


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def on_thread(name: str, fn: Callable[[], None]) -> None:
    """Run ``fn`` on a thread of its own, as the app's worker (or a signal handler) would."""
    thread = threading.Thread(target=fn, name=name)
    thread.start()
    thread.join(10)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, threading.Thread]]:
    """A TrayIcon on the recording backend, its loop running on a thread named ``backend-loop``."""
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")
    import pystray

    from tests.fakes.traybackend import icon_class
    from tray.desktop.tray import TrayIcon

    monkeypatch.setattr(pystray, "Icon", icon_class())
    tray = TrayIcon(lambda action, arg: None, platform="win32",  # the fake is as strict as Windows
                    dispatcher=lambda icon: Win32Dispatcher(icon, post=icon.post_message))
    ready = threading.Event()
    loop = threading.Thread(target=tray.run, args=(ready.set,), name="backend-loop")
    loop.start()
    assert ready.wait(10)
    try:
        yield tray, tray._icon, loop
    finally:
        tray.stop()
        loop.join(10)


def menu(*texts: str) -> MenuModel:
    return MenuModel((*(MenuItem(text, Action.OPEN_WINDOW) for text in texts), MenuItem("Quit", Action.QUIT)))


def test_every_change_runs_on_the_backends_own_thread(recording: tuple[Any, Any, threading.Thread]) -> None:
    tray, icon, loop = recording
    on_thread("tray-worker", lambda: tray.update(menu("Open pool window…"), "healthy", TOOLTIP))
    wait_for(lambda: any(what == "title" for what, _ in icon.records), "the tooltip was set")
    assert tooltip_units(icon.title) <= 127 and icon.title.startswith("codex-pool: some accounts")
    on_thread("tray-worker", lambda: tray.update(menu("Open pool window…", "Add account…"), "degraded", "x"))
    wait_for(lambda: sum(what == "menu" for what, _ in icon.records) >= 3, "the new menu was built")
    on_thread("signal", tray.stop)
    loop.join(10)
    assert not loop.is_alive()
    assert icon.violations == []
    assert {"show", "icon", "title", "menu", "stop"} <= {what for what, _ in icon.records}
    assert {thread for _, thread in icon.records} == {"backend-loop"}


def test_a_menu_open_on_screen_is_not_rebuilt_under_the_pointer(
    recording: tuple[Any, Any, threading.Thread],
) -> None:
    tray, icon, _loop = recording
    on_thread("tray-worker", lambda: tray.update(menu("Proxy stopped"), "stopped", "codex-pool: stopped"))
    wait_for(lambda: any(what == "title" for what, _ in icon.records), "the first update")
    icon.open_menu()
    wait_for(lambda: icon.menu_on_screen, "the menu opened")
    built = sum(what == "menu" for what, _ in icon.records)
    on_thread("tray-worker", lambda: tray.update(menu("Proxy http://127.0.0.1:4466"), "healthy",
                                                  "codex-pool: healthy"))
    time.sleep(0.2)  # the update's message is dispatched by the menu's modal loop meanwhile
    assert sum(what == "menu" for what, _ in icon.records) == built  # held while the menu is open
    icon.close_menu()
    wait_for(lambda: sum(what == "menu" for what, _ in icon.records) > built, "the held update ran")
    assert icon.violations == []
    assert icon.title == "codex-pool: healthy"


def test_tooltips_fit_windows_szTip_and_keep_the_state_line() -> None:
    fitted = fit_tooltip(TOOLTIP, "win32")
    assert tooltip_units(TOOLTIP) > 127 and tooltip_units(fitted) <= 127
    (ctypes.c_wchar * 128)().value = fitted  # what pystray's Windows backend does with it
    assert fitted == "\n".join(TOOLTIP.split("\n")[:2])  # whole lines dropped from the end
    one_line = "codex-pool: " + LONG_EMAIL * 3
    cut = fit_tooltip(one_line, "win32")
    assert tooltip_units(cut) <= 127 and cut.endswith("…") and cut.startswith("codex-pool: ")
    assert fit_tooltip(TOOLTIP, "linux") == TOOLTIP == fit_tooltip(TOOLTIP, "darwin")


def test_characters_outside_the_bmp_count_twice_as_windows_counts_them() -> None:
    emoji = "codex-pool: " + "🙂" * 70  # 12 + 140 UTF-16 units, only 82 characters
    fitted = fit_tooltip(emoji, "win32")
    assert tooltip_units(fitted) <= 127
    assert len(fitted.encode("utf-16-le")) // 2 + 1 <= 128  # the NUL fits as well


def test_stop_signals_include_ctrl_break_on_windows() -> None:
    from tray.desktop.signals import stop_signal_names

    assert stop_signal_names("win32") == ("SIGINT", "SIGTERM", "SIGBREAK")
    assert stop_signal_names("darwin") == stop_signal_names("linux") == ("SIGINT", "SIGTERM")


def test_a_signal_reaches_the_watcher_while_the_main_thread_is_in_a_native_loop() -> None:
    """macOS and Windows: the main thread sits in AppKit's or Win32's loop, where a Python handler
    waits for Python to run again. The watcher hears the signal at once all the same (here the main
    thread blocks in a C call that does not return to Python until the watcher says so)."""
    import os
    import subprocess
    import sys
    import textwrap

    from tests.support.gui_fixtures import ROOT

    script = textwrap.dedent("""
        import os, sys, threading
        from tray.desktop.signals import SignalWatcher
        r, w = os.pipe()
        def quit():
            print("quit on", threading.current_thread().name, flush=True)
            os.write(w, b"x")
        watcher = SignalWatcher(quit)
        print("ready", flush=True)
        os.read(r, 1)  # the "GUI loop"; a handler that waited for Python would never run
        watcher.close()
        print("stopped", flush=True)
    """)
    with subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True) as child:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        os.kill(child.pid, 15)
        assert child.stdout.readline() == "quit on signals\n"
        assert child.stdout.readline() == "stopped\n"
        assert child.wait(10) == 0
