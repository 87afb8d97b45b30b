"""The pystray adapter: backend choice (never xorg on Linux), the no-GUI diagnosis, and the menu
model turned into pystray items whose clicks come back as actions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tray.desktop.tray import select_backend

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.filterwarnings("ignore::ImportWarning")  # PyGObject's importer predates exec_module
def test_linux_never_gets_the_xorg_backend() -> None:
    env = {"PYSTRAY_BACKEND": "xorg"}
    chosen = select_backend(env, "linux")
    assert chosen in ("appindicator", "gtk")
    assert env["PYSTRAY_BACKEND"] == chosen
    assert select_backend({"PYSTRAY_BACKEND": "gtk"}, "linux") == "gtk"  # an explicit choice stands
    assert select_backend({}, "darwin") == "darwin"
    assert select_backend({}, "win32") == "win32"


def run_py(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_why_there_is_no_tray() -> None:
    code = "from tray.desktop.tray import gui_problem; print(gui_problem())"
    assert run_py(code).stdout.strip() == "no display"
    bogus = run_py(code, DISPLAY=":987", DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent")
    assert bogus.stdout.strip() == "cannot open the display :987", bogus.stderr


DRIVE = """
import json, time
from gi.repository import GLib
from tray.health import AccountView, Snapshot
from tray.desktop.menu import build_menu
from tray.desktop.tray import TrayIcon
from tests.desktop.test_menu import NOW, usage, view

clicked = []
icon = TrayIcon(lambda action, arg: clicked.append([str(action), arg]))
snap = Snapshot(now=NOW, running=True, proxy_url="http://127.0.0.1:4141", autostart=True,
                accounts=(view(u=usage(42, 12)), view(2, "b@x.com", 1, False)))
icon.update(build_menu(snap), "healthy", "tip")
icon.update(build_menu(snap), "healthy", "tip")  # unchanged: nothing queued
while GLib.MainContext.default().iteration(False):
    pass
items = icon._icon.menu.items
rows = [[str(i), i.checked, i.enabled, i.default, [str(s) for s in (i.submenu.items if i.submenu else [])]]
        for i in items]
second = items[4].submenu.items
next(s for s in second if str(s) == "Make primary")(icon._icon)
next(i for i in items if str(i) == "Start at login")(icon._icon)
print(json.dumps({"rows": rows, "clicked": clicked, "title": icon._icon.title}))
"""


@pytest.mark.gui
def test_menu_model_becomes_pystray_items_and_clicks_come_back() -> None:
    done = run_py(DRIVE, PYSTRAY_BACKEND="dummy")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    rows = out["rows"]
    assert rows[0][0] == "All good"  # the pool's health, in the words every surface uses
    assert rows[1][0] == "Proxy http://127.0.0.1:4141 (click to copy)"
    assert rows[2][0] == "- - - -"  # a separator
    assert rows[3][0].startswith("work@x.com · plus · primary · 5h 42 % used")
    assert rows[4][4] == ["Make primary", "Move up", "Move down", "Disable", "Remove…"]
    start = next(r for r in rows if r[0] == "Start at login")
    assert start[1] is True
    assert next(r for r in rows if r[0] == "Open pool window…")[3] is True  # the default item
    assert out["clicked"] == [["account.primary", 2], ["autostart.toggle", None]]
    assert out["title"] == "tip"
