"""The pool window: pywebview (GTK/WebKit2) under Xvfb on a real engine's ``/ui/``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.fakes.apphost import running_engine
from tests.fakes.seed import add_account, put_usage
from tests.support.gui_fixtures import ROOT, gui_env, screenshot
from tray.desktop.window import WindowProcess

pytestmark = pytest.mark.gui


@pytest.fixture
def engine(pool_home: Path) -> Iterator[Any]:
    with running_engine() as pool:
        store = pool.engine.store
        work = add_account(store, "work@x.com", plan="plus")
        spare = add_account(store, "spare@x.com", plan="pro")
        put_usage(store, work, 42, 12)
        put_usage(store, spare, 5, 1)
        yield pool.engine


def colours(path: Path) -> int:
    return len(Image.open(path).convert("RGB").getcolors(1 << 20) or [])


def window_id(display: str, pid: int, timeout: float = 30.0) -> str:
    """The X window the process mapped (xdotool), waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--pid", str(pid), "--name", "codex-pool"],
            env={"DISPLAY": display}, capture_output=True, text=True, check=False,
        )
        ids = found.stdout.split()
        if ids:
            return ids[-1]
        time.sleep(0.2)
    raise AssertionError("the window never appeared")


def shot_until_rendered(display: str, path: Path, box: tuple[int, int, int, int]) -> int:
    """Screenshot the window area until it is more than a blank page (the first render can be white)."""
    deadline = time.monotonic() + 30
    while True:
        screenshot(display, path, box)
        count = colours(path)
        if count > 200 or time.monotonic() > deadline:
            return count
        time.sleep(0.3)


def geometry(display: str, wid: str) -> tuple[int, int, int, int]:
    out = subprocess.run(["xdotool", "getwindowgeometry", "--shell", wid], env={"DISPLAY": display},
                         capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.split())
    return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])


def test_window_loads_the_ui_and_shows_the_accounts(engine: Any, xvfb: str, session_bus: str,
                                                    tmp_path: Path) -> None:
    probe = subprocess.Popen([sys.executable, "-m", "tests.support.window_probe", "spare@x.com"], cwd=ROOT,
                             env=gui_env(xvfb, session_bus), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert probe.stdin is not None and probe.stdout is not None
    try:
        probe.stdin.write(engine.ui_url + "\n")
        probe.stdin.flush()
        page = json.loads(probe.stdout.readline() or "{}")
        assert "work@x.com" in page["text"] and "spare@x.com" in page["text"], page
        wid = window_id(xvfb, probe.pid)
        x, y, w, h = geometry(xvfb, wid)
        assert (w, h) == (960, 640)
        count = shot_until_rendered(xvfb, tmp_path / "window.png", (x, y, w, h))
        assert count > 200, f"the window looks blank ({count} colours)"
    finally:
        probe.stdin.close()
        probe.wait(20)
        probe.stdout.close()
        if probe.stderr is not None:
            probe.stderr.close()
    assert probe.returncode == 0


def test_second_open_reuses_the_window_and_switches_page(engine: Any, xvfb: str, session_bus: str,
                                                         tmp_path: Path) -> None:
    window = WindowProcess(env=gui_env(xvfb, session_bus))
    try:
        switch_pages(window, engine, xvfb, tmp_path)
    finally:
        window.close()
    assert not window.is_open


def green_pixels(path: Path) -> int:
    """Pixels of the quota bars' green: many on the accounts page, next to none elsewhere."""
    image = Image.open(path).convert("RGB")
    return sum(n for n, (r, g, b) in image.getcolors(1 << 20) or [] if g > 100 and g > r + 50 and g > b + 30)


def wait_shot(display: str, path: Path, box: tuple[int, int, int, int], ok: Callable[[Path], bool]) -> bool:
    deadline = time.monotonic() + 20
    while True:
        screenshot(display, path, box)
        if ok(path):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)


def spent(engine: Any, code: str) -> bool:
    """Whether the window traded ``code`` for a session (waiting for it); a code works once."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not engine.sessions.unspent(code):
            return True
        time.sleep(0.3)
    return False


def switch_pages(window: WindowProcess, engine: Any, xvfb: str, tmp_path: Path) -> None:
    window.open(engine.ui_url)  # the tray mints a fresh one-time address each time it shows the window
    first = window.pid
    assert first is not None
    box = geometry(xvfb, window_id(xvfb, first))
    assert wait_shot(xvfb, tmp_path / "accounts.png", box, lambda p: green_pixels(p) > 300), \
        "the accounts page never showed its quota bars"
    again = engine.ui_url
    window.open(again, "settings")  # what a second start or "Open pool window" does
    assert window.pid == first  # the same window, not a second one
    assert wait_shot(xvfb, tmp_path / "settings.png", box, lambda p: green_pixels(p) < 100), \
        "the window did not switch to the settings page"
    assert spent(engine, again.split("#code=", 1)[1]), "the open window did not take the fresh code"


def test_a_window_that_cannot_start_reports_why(tmp_path: Path) -> None:
    log = tmp_path / "window.log"
    # "sh -m tray.desktop.window": a stand-in interpreter that fails at once and says why on stderr.
    window = WindowProcess(["/bin/sh", "-m", "tray.desktop.window"], log=log)
    assert window.open("http://127.0.0.1:9/ui/") is True
    reason = window.failed(within=10)
    assert reason is not None and "cannot open tray.desktop.window" in reason
    window.close()


def test_the_window_command_in_a_bundle_is_the_bundle_with_the_window_flag() -> None:
    """In a PyInstaller build sys.executable is codex-pool itself: '-m tray.desktop.window' would be
    parsed by its CLI and refused ("invalid choice"), so the bundle gets the flag its launcher
    dispatches before the CLI (the packaging test starts the built bundle's window this way)."""
    from tray.desktop.window import WINDOW_FLAG, window_command

    bundled = "/opt/codex-pool/codex-pool"
    assert window_command(bundled, frozen=True) == [bundled, WINDOW_FLAG]
    assert window_command(r"C:\Program Files\codex-pool\codex-pool.exe", frozen=True)[1] == "--pool-window"
    assert window_command("/usr/bin/python3", frozen=False) == ["/usr/bin/python3", "-m",
                                                                "tray.desktop.window"]
    assert window_command(frozen=False) == [sys.executable, "-m", "tray.desktop.window"]


def purple_pixels(path: Path) -> int:
    """Pixels of the Usage chart's third line (``--chart-3``, #9c36b5 in the light theme)."""
    image = Image.open(path).convert("RGB")
    return sum(n for n, (r, g, b) in image.getcolors(1 << 20) or []
               if abs(r - 0x9C) < 40 and abs(g - 0x36) < 40 and abs(b - 0xB5) < 40)


def test_usage_page_draws_its_chart_in_the_gtk_window(pool_home: Path, xvfb: str, session_bus: str,
                                                      tmp_path: Path) -> None:
    # A C locale is what minimal desktops and services run with: WebKitGTK then reports the page's
    # language as "C", which the chart library's number format refused as it loaded.
    from tests.ui.test_usage import busy_day

    with running_engine() as pool:
        busy_day(pool.engine.store)
        env = gui_env(xvfb, session_bus, LANG="C.UTF-8", LC_ALL="C.UTF-8", LANGUAGE="")
        probe = subprocess.Popen([sys.executable, "-m", "tests.support.window_probe", "At this pace"],
                                 cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert probe.stdin is not None and probe.stdout is not None
        try:
            probe.stdin.write(pool.engine.ui_url + "&page=usage\n")
            probe.stdin.flush()
            text = json.loads(probe.stdout.readline() or "{}").get("text", "")
            assert "could not load" not in text, text
            assert "At this pace the pool's 5-hour quota runs out at" in text, text
            box = geometry(xvfb, window_id(xvfb, probe.pid))
            shot = tmp_path / "usage-gtk.png"
            assert wait_shot(xvfb, shot, box, lambda p: purple_pixels(p) > 150), \
                "the Usage page's chart never drew its lines"
        finally:
            probe.stdin.close()
            probe.wait(20)
            probe.stdout.close()
            if probe.stderr is not None:
                probe.stderr.close()
    assert probe.returncode == 0


class RecordingWindow:
    """What ``_listen`` drives: a pywebview window that notes the addresses it is sent to."""

    def __init__(self) -> None:
        import threading

        self.events = type("Events", (), {"loaded": threading.Event()})()
        self.events.loaded.set()
        self.loaded: list[str] = []
        self.destroyed = False

    def show(self) -> None: ...

    def restore(self) -> None: ...

    def load_url(self, url: str) -> None:
        self.loaded.append(url)

    def destroy(self) -> None:
        self.destroyed = True


def test_the_window_follows_the_proxy_to_a_new_port() -> None:
    import io

    from tray.desktop.window import _listen

    window = RecordingWindow()
    commands = io.StringIO("show http://127.0.0.1:5000/ui/#code=a&page=settings\n"
                           "show http://127.0.0.1:6000/ui/#code=b\n"  # the proxy restarted on 6000
                           "show #code=c&page=usage\n"  # an older tray's fragment-only command
                           "close\n")
    _listen(window, commands, "http://127.0.0.1:5000/ui/#code=first")
    assert window.loaded == ["http://127.0.0.1:5000/ui/#code=a&page=settings",
                             "http://127.0.0.1:6000/ui/#code=b", "http://127.0.0.1:6000/ui/#code=c&page=usage"]
    assert window.destroyed


def test_showing_the_window_again_sends_the_whole_new_address(tmp_path: Path) -> None:
    record = tmp_path / "stdin.txt"
    stand_in = tmp_path / "python"  # run as "python -m tray.desktop.window": keeps what it is told
    stand_in.write_text(f"#!/bin/sh\nexec cat > {record}\n")
    stand_in.chmod(0o755)
    window = WindowProcess([str(stand_in), "-m", "tray.desktop.window"])
    try:
        assert window.open("http://127.0.0.1:5000/ui/#code=a") is True
        assert window.open("http://127.0.0.1:6000/ui/#code=b", "settings") is False  # the same window
    finally:
        window.close()
    assert record.read_text().splitlines() == [
        "http://127.0.0.1:5000/ui/#code=a", "show http://127.0.0.1:6000/ui/#code=b&page=settings", "close"]
