"""The tray under Xvfb: trayer as tray host, a private session bus, the fake notification server.

The icon is screenshotted in every state, the AppIndicator menu is read and clicked over D-Bus
(``com.canonical.dbusmenu``), and notifications are read from the fake server. State is driven
through the shared pool store, as the CLI or another proxy would change it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes.seed import add_account, put_usage
from tests.support.gui_fixtures import ROOT, DbusMenu, Notes, gui_env, screenshot
from tray import config
from tray.desktop.app import POLL_SECONDS
from tray.models import AccountState, Cooldown
from tray.paths import Paths, resolve_paths
from tray.store.accounts import Store

pytestmark = pytest.mark.gui

DEAD_URL = "http://127.0.0.1:9"  # nothing listens there: no traffic ever leaves the machine
TRAY_AREA = (1280 - 200, 0, 200, 32)  # trayer docks top right


def prepare_pool(**updates: object) -> Paths:
    paths = resolve_paths().ensure()
    settings = {"port": 0, "upstream-url": f"{DEAD_URL}/backend-api", "auth-url": DEAD_URL, **updates}
    config.save_config(paths.config_file, settings)
    return paths


def start_tray(display: str, bus: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tray"], cwd=ROOT, text=True,
        env=gui_env(display, bus, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for(predicate: object, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.fixture
def running(tray_host: str, session_bus: str, notifications: Notes) -> Iterator[
        tuple[subprocess.Popen[str], DbusMenu, Paths]]:
    paths = prepare_pool()
    store = Store.open(paths.db_file)
    work = add_account(store, "work@x.com", plan="plus")
    spare = add_account(store, "spare@x.com", plan="pro")
    put_usage(store, work, 42, 12)
    put_usage(store, spare, 5, 1)
    store.close()
    proc = start_tray(tray_host, session_bus)
    menu = DbusMenu(session_bus, proc.pid)
    try:
        yield proc, menu, paths
    finally:
        _code, err = stop(proc)
        assert "Traceback" not in err, err


TRAYER_GREY = (220, 218, 213)


def dominant_colour(path: Path) -> tuple[int, int, int]:
    """The most common colour in the tray area that is neither the empty screen nor trayer's panel
    nor the icon's white glyph: the icon's state colour."""
    image = Image.open(path).convert("RGB")
    for _count, rgb in sorted(image.getcolors(1 << 20) or [], reverse=True):
        if rgb != (0, 0, 0) and rgb != TRAYER_GREY and min(rgb) < 235:
            return rgb
    raise AssertionError(f"no icon in {path}")


def family(rgb: tuple[int, int, int]) -> str:
    r, g, b = rgb
    if max(rgb) - min(rgb) < 40:
        return "grey"
    if g > r and g > b:
        return "green"
    return "red" if r > g * 1.6 else "amber"


def tray_shot(display: str, path: Path, expect: str) -> tuple[int, int, int]:
    """Screenshot the tray until the icon shows the expected colour family."""
    deadline = time.monotonic() + 15
    while True:
        screenshot(display, path, TRAY_AREA)
        try:
            rgb = dominant_colour(path)
        except AssertionError:
            rgb = (0, 0, 0)
        seen = "none" if rgb == (0, 0, 0) else family(rgb)
        if seen == expect or time.monotonic() > deadline:
            assert seen == expect, f"tray icon is {seen} {rgb}, expected {expect}"
            return rgb
        time.sleep(0.2)


def test_menu_lists_accounts_and_actions_change_the_store(running: tuple, tmp_path: Path) -> None:
    _proc, menu, paths = running
    layout = menu.layout(until=lambda m: any("work@x.com" in label for label in m.labels))
    labels = layout.labels
    assert labels[0] == "All good"
    assert labels[1].startswith("Proxy http://127.0.0.1:") and labels[1].endswith("(click to copy)")
    work = next(label for label in labels if label.startswith("work@x.com"))
    assert re.match(r"work@x\.com · plus · primary · 5h 42 % used \(resets in 2 h 1[01] min\) · "
                    r"weekly 12 % used \(resets in \d d", work), work
    assert any(label.startswith("spare@x.com · pro · pool · 5h 5 % used") for label in labels)
    for entry in ("Add account (browser)…", "Add account (device code)…", "Open pool window…",
                  "Start at login", "Open config file", "Quit"):
        assert entry in labels
    spare_item = layout.find("spare@x.com")
    assert spare_item is not None
    assert spare_item.labels == ["Make primary", "Move up", "Move down", "Disable", "Remove…"]
    start_at_login = layout.find("Start at login")
    assert start_at_login is not None and start_at_login.toggle == 0

    menu.click("Make primary")  # the first "Make primary" in the tree is work's (disabled) ...
    menu.click("Disable")  # ... and the first Disable is work's: it turns disabled
    layout = menu.layout(until=lambda m: any("work@x.com · plus · primary · disabled" in x for x in m.labels))
    store = Store.open(paths.db_file)
    try:
        accounts = {a.email: a for a in store.accounts()}
        assert accounts["work@x.com"].state is AccountState.DISABLED
    finally:
        store.close()

    menu.click("Start at login")
    menu.layout(until=lambda m: (m.find("Start at login") or m).toggle == 1)
    autostart_file = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "codex-pool.desktop"
    wait_for(autostart_file.is_file, what="the autostart entry to be written")


def test_a_click_lands_although_the_menu_was_refreshed_after_the_host_read_it(running: tuple) -> None:
    """The tray host shows the menu it last read; the app refreshes it every few seconds (quota,
    durations). A click the user makes on the shown menu must still act after such a refresh."""
    _proc, menu, paths = running
    store = Store.open(paths.db_file)
    try:
        spare = next(a for a in store.accounts() if a.email == "spare@x.com")
        def current(m: object) -> bool:  # the menu shows the spare account's state as stored now
            row = m.find("spare@x.com")  # type: ignore[attr-defined]
            enabled = store.get(spare.id).state is AccountState.ENABLED  # type: ignore[union-attr]
            return row is not None and row.find("Disable" if enabled else "Enable") is not None

        for used in (7, 9, 11):
            shown = menu.layout(until=current)
            row = shown.find("spare@x.com")
            assert row is not None
            item = row.find("Disable") or row.find("Enable")
            assert item is not None
            want = AccountState.DISABLED if item.label == "Disable" else AccountState.ENABLED
            put_usage(store, spare, used, 1)  # quota moves: the next poll rebuilds the menu's texts
            menu.layout(until=lambda m, u=used: any(x.startswith("spare@x.com") and f"5h {u} % used" in x
                                                    for x in m.labels))
            assert menu.event(item.id) is None  # the click on the item as the host showed it
            wait_for(lambda w=want: store.get(spare.id).state is w, what=f"spare {want.value}")
    finally:
        store.close()


def test_a_second_click_on_the_same_shown_menu_lands_too(running: tuple) -> None:
    """A host keeps showing the menu it read; two clicks on it (here: Start at login, on and off)
    both act, and setting the check mark in place does not click it again."""
    _proc, menu, _paths = running
    shown = menu.layout(until=lambda m: (m.find("Start at login") or m).toggle == 0)
    item = shown.find("Start at login")
    assert item is not None
    autostart_file = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "codex-pool.desktop"
    for on in (True, False, True):
        assert menu.event(item.id) is None
        menu.layout(until=lambda m, on=on: (m.find("Start at login") or m).toggle == int(on))
        wait_for(lambda on=on: autostart_file.is_file() is on, what=f"start at login {on}")
    time.sleep(POLL_SECONDS * 2)  # two more polls: the check mark set in place toggled nothing
    assert autostart_file.is_file()
    assert (menu.layout().find("Start at login") or menu.layout()).toggle == 1


def test_icon_state_and_notifications_follow_the_store(running: tuple, notifications: Notes,
                                                      tray_host: str, tmp_path: Path) -> None:
    _proc, menu, paths = running
    menu.layout(until=lambda m: any("work@x.com" in label for label in m.labels))
    healthy = tray_shot(tray_host, tmp_path / "healthy.png", "green")

    store = Store.open(paths.db_file)
    try:
        spare = next(a for a in store.accounts() if a.email == "spare@x.com")
        store.set_state(spare.id, AccountState.NEEDS_LOGIN, "refresh_token_reused")
        degraded = tray_shot(tray_host, tmp_path / "degraded.png", "amber")
        login = notifications.wait(where=lambda n: "needs a new login" in n["summary"])
        assert len(login) == 1 and "spare@x.com" in login[0]["summary"]
        assert "spare@x.com" not in login[0]["body"]  # named once
        assert "Re-login" in login[0]["body"]  # no buttons on this desktop: the body says how
        assert login[0]["app_icon"].endswith("codex-pool-degraded-128.png")

        work = next(a for a in store.accounts() if a.email == "work@x.com")
        store.set_cooldown(Cooldown(work.id, time.time() + 3600, 429, "rate limited", "body"))
        exhausted = tray_shot(tray_host, tmp_path / "exhausted.png", "red")
        out = notifications.wait(where=lambda n: "pool exhausted" in n["summary"])
        assert len(out) == 1 and "(in 1 h" in out[0]["summary"]
        assert out[0]["app_icon"].endswith("codex-pool-exhausted-128.png")  # not the green icon
        assert family(dominant_colour(Path(out[0]["app_icon"]))) == "red"

        store.clear_cooldown(work.id)
        back = notifications.wait(where=lambda n: "available again" in n["summary"])
        assert len(back) == 1 and back[0]["body"] == "work@x.com can take requests again."
        assert back[0]["app_icon"].endswith("codex-pool-healthy-128.png")
    finally:
        store.close()

    (paths.config_file).write_text('port = 0\nfast-mode = "sometimes"\n'
                                   f'upstream-url = "{DEAD_URL}/backend-api"\n', encoding="utf-8")
    bad = notifications.wait(where=lambda n: "config problem" in n["summary"])
    assert len(bad) == 1 and "fast-mode" in bad[0]["body"]
    time.sleep(3)  # two more polls: every episode is still announced exactly once
    summaries = [n["summary"] for n in notifications.all()]
    for words in ("needs a new login", "pool exhausted", "available again", "config problem"):
        assert sum(words in s for s in summaries) == 1, summaries
    assert len({healthy, degraded, exhausted}) == 3
    assert all(n["app_name"] == "codex-pool" for n in notifications.all())


def test_quit_from_the_menu_stops_the_proxy_cleanly(running: tuple) -> None:
    proc, menu, paths = running
    menu.layout(until=lambda m: "Quit" in m.labels)
    url = json.loads(paths.instance_file.read_text())["url"]
    menu.click("Quit")
    assert proc.wait(20) == 0
    assert not paths.instance_file.exists()
    import httpx

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def icon_centre(display: str, path: Path) -> tuple[int, int]:
    """Where the icon sits on screen (the bounding box of its coloured pixels in the tray)."""
    screenshot(display, path, TRAY_AREA)
    image = Image.open(path).convert("RGB")
    mask = Image.new("L", image.size)
    mask.putdata([0 if rgb in ((0, 0, 0), TRAYER_GREY) else 255 for rgb in image.get_flattened_data()])
    box = mask.getbbox()
    assert box is not None, "no icon in the tray"
    return TRAY_AREA[0] + (box[0] + box[2]) // 2, TRAY_AREA[1] + (box[1] + box[3]) // 2


def test_clicking_the_icon_opens_the_menu(running: tuple, tray_host: str, tmp_path: Path) -> None:
    _proc, menu, _paths = running
    menu.layout(until=lambda m: any("spare@x.com" in label for label in m.labels))
    tray_shot(tray_host, tmp_path / "icon.png", "green")
    x, y = icon_centre(tray_host, tmp_path / "icon.png")
    below = (1280 - 640, 32, 640, 400)
    screenshot(tray_host, tmp_path / "before.png", below)
    subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", "1"], env={"DISPLAY": tray_host},
                   check=True, timeout=10)
    deadline = time.monotonic() + 10
    while True:
        shot = screenshot(tray_host, tmp_path / "menu.png", below)
        counts = Image.open(shot).convert("RGB").getcolors(1 << 20) or []
        lit = sum(n for n, rgb in counts if rgb != (0, 0, 0))
        if lit > 20000 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lit > 20000, "no menu popped up under the icon"
    if os.environ.get("CODEX_POOL_SCREENSHOTS"):  # refresh the README's picture: assets/screenshot-menu.png
        # Point at the first account so its submenu opens too.
        subprocess.run(["xdotool", "mousemove", str(1280 - 300), "98"], env={"DISPLAY": tray_host},
                       check=True, timeout=10)
        time.sleep(1.0)
        screenshot(tray_host, Path(os.environ["CODEX_POOL_SCREENSHOTS"]) / "screenshot-menu.png",
                   (1280 - 900, 0, 900, 330))
    subprocess.run(["xdotool", "key", "Escape"], env={"DISPLAY": tray_host}, check=True, timeout=10)


def test_clicking_the_proxy_address_copies_it(running: tuple, tray_host: str, session_bus: str) -> None:
    _proc, menu, paths = running
    menu.layout(until=lambda m: "Quit" in m.labels)
    url = json.loads(paths.instance_file.read_text())["url"]
    menu.click("Proxy http://")
    read = (
        "import gi; gi.require_version('Gtk', '3.0'); gi.require_version('Gdk', '3.0')\n"
        "from gi.repository import Gtk, Gdk\n"
        "print(Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD).wait_for_text())\n"
    )
    deadline = time.monotonic() + 10
    while True:
        got = subprocess.run([sys.executable, "-c", read], env=gui_env(tray_host, session_bus),
                             capture_output=True, text=True, timeout=20, check=False).stdout.strip()
        if got == url or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == url


def test_a_taken_port_is_named_in_the_menu_and_the_proxy_starts_once_it_frees(
    tray_host: str, session_bus: str, notifications: Notes
) -> None:
    """Quit and start again while the port is still taken: the menu says why the proxy cannot start
    (not "Proxy stopped" forever), and the proxy starts by itself once the port is free."""
    import socket

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    port = squatter.getsockname()[1]
    prepare_pool(port=port)
    proc = start_tray(tray_host, session_bus)
    menu = DbusMenu(session_bus, proc.pid)
    try:
        layout = menu.layout(until=lambda m: bool(m.labels) and "cannot start" in m.labels[0])
        head = layout.labels[0]
        assert head.startswith(f"Proxy cannot start: port {port} is in use"), head
        assert head.endswith(" · retrying, click to retry now")
        squatter.close()
        layout = menu.layout(45, until=lambda m: len(m.labels) > 1 and m.labels[1].startswith("Proxy http"))
        assert layout.labels[:2] == ["No accounts", f"Proxy http://127.0.0.1:{port} (click to copy)"]
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).status_code == 200
    finally:
        squatter.close()
        _code, err = stop(proc)
    assert "Traceback" not in err, err
