"""Desktop test rig: Xvfb, a private D-Bus session bus, a fake notification server, a tray host, and
helpers to screenshot the screen and to read and click an AppIndicator menu over D-Bus.

Use as a plugin (``pytest_plugins = ("tests.support.gui_fixtures",)`` in the test module). GUI code always
runs in subprocesses started with :func:`gui_env`: pystray and pywebview own their main loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)} (install the Debian packages in ./dev)")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="session")
def xvfb() -> Iterator[str]:
    """A private X display (``:N``); ``-displayfd`` lets Xvfb pick a free number."""
    _need("Xvfb")
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(w,), stderr=subprocess.DEVNULL,
    )
    os.close(w)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(r, 16)
        if not chunk:
            break
        number += chunk
    os.close(r)
    if not number.strip():
        _stop(proc)
        pytest.fail("Xvfb did not start")
    yield ":" + number.decode().strip()
    _stop(proc)


@pytest.fixture(scope="session")
def session_bus() -> Iterator[str]:
    """A private session bus; the value is for ``DBUS_SESSION_BUS_ADDRESS``."""
    _need("dbus-daemon")
    proc = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    yield address
    _stop(proc)


@dataclass
class Notes:
    """What the fake notification server received, one dict per ``Notify`` call."""

    log: Path
    bus: str = ""

    def click(self, nid: int, key: str) -> None:
        """The user clicks the button ``key`` of notification ``nid`` (a server with actions)."""

        async def go() -> None:
            from dbus_fast import Message, MessageType
            from dbus_fast.aio import MessageBus

            conn = await MessageBus(bus_address=self.bus).connect()
            try:
                reply = await conn.call(Message(
                    destination="org.freedesktop.Notifications", path="/org/freedesktop/Notifications",
                    interface="org.freedesktop.Notifications", member="Click", signature="us",
                    body=[nid, key]))
                assert reply.message_type is not MessageType.ERROR, reply.body
            finally:
                conn.disconnect()

        asyncio.run(go())

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wait(self, count: int = 1, timeout: float = 15.0,
             where: Callable[[dict[str, Any]], bool] = lambda _n: True) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = [n for n in self.all() if where(n)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def _notify_server(session_bus: str, tmp_path: Path, *extra: str) -> Iterator[Notes]:
    log = tmp_path / "notifications.jsonl"
    log.touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.notifyd", str(log), *extra], cwd=ROOT,
        env=dict(os.environ, DBUS_SESSION_BUS_ADDRESS=session_bus), stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    yield Notes(log, session_bus)
    _stop(proc)


@pytest.fixture
def notifications(session_bus: str, tmp_path: Path) -> Iterator[Notes]:
    """The fake ``org.freedesktop.Notifications`` on the private bus, recording to a file (no
    buttons, as some desktops have it)."""
    yield from _notify_server(session_bus, tmp_path)


@pytest.fixture
def notifications_with_actions(session_bus: str, tmp_path: Path) -> Iterator[Notes]:
    """The fake notification server with the ``actions`` capability: buttons, and clicks on them."""
    yield from _notify_server(session_bus, tmp_path, "--actions")


@pytest.fixture(scope="session")
def tray_host(xvfb: str) -> Iterator[str]:
    """``trayer`` docked at the top right: an XEmbed tray host for the icon to show in."""
    _need("trayer")
    proc = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32",
         "--transparent", "false", "--SetDockType", "true"],
        env=dict(os.environ, DISPLAY=xvfb), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    yield xvfb
    _stop(proc)


def gui_env(display: str, bus: str, **extra: str) -> dict[str, str]:
    """The environment for a GUI subprocess on the private display and bus."""
    env = dict(os.environ, DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=bus, NO_AT_BRIDGE="1",
               WEBKIT_DISABLE_DMABUF_RENDERER="1", GDK_BACKEND="x11", PYTHONPATH=str(ROOT))
    env.pop("WAYLAND_DISPLAY", None)
    env.update(extra)
    return env


def screenshot(display: str, path: Path, crop: tuple[int, int, int, int] | None = None) -> Path:
    """``import -window root`` (ImageMagick), optionally cropped to (x, y, w, h)."""
    _need("import")
    args = ["import", "-display", display, "-window", "root"]
    if crop is not None:
        x, y, w, h = crop
        args += ["-crop", f"{w}x{h}+{x}+{y}", "+repage"]
    subprocess.run([*args, str(path)], check=True, timeout=20)
    return path


# --- AppIndicator menus over com.canonical.dbusmenu -------------------------------------------------


@dataclass
class DbusItem:
    id: int
    label: str
    enabled: bool
    toggle: int | None  # 1 checked, 0 unchecked, None: not a check item
    children: list[DbusItem] = field(default_factory=list)

    def find(self, start: str) -> DbusItem | None:
        for child in self.children:
            if child.label.startswith(start):
                return child
            deeper = child.find(start)
            if deeper is not None:
                return deeper
        return None

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.children if c.label]


def _label(props: dict[str, Any]) -> str:
    variant = props.get("label")
    text = str(variant.value) if variant is not None else ""
    return text.replace("__", "\0").replace("_", "").replace("\0", "_")  # mnemonic escaping


def _item(raw: list[Any]) -> DbusItem:
    item_id, props, children = raw
    toggle = props.get("toggle-state")
    enabled = props.get("enabled")
    return DbusItem(
        id=int(item_id), label=_label(props),
        enabled=True if enabled is None else bool(enabled.value),
        toggle=None if "toggle-type" not in props or toggle is None else int(toggle.value),
        children=[_item(child.value) for child in children],
    )


class DbusMenu:
    """The menu a process exports through libayatana-appindicator (found by its pid)."""

    def __init__(self, bus: str, pid: int) -> None:
        self.bus, self.pid = bus, pid

    async def _connect(self) -> Any:
        from dbus_fast.aio import MessageBus

        return await MessageBus(bus_address=self.bus).connect()

    async def _locate(self, conn: Any) -> tuple[str, str] | None:
        from dbus_fast import Message

        names = (await conn.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                         interface="org.freedesktop.DBus", member="ListNames"))).body[0]
        for name in names:
            if not name.startswith(":"):
                continue
            reply = await conn.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="GetConnectionUnixProcessID",
                signature="s", body=[name]))
            if not reply.body or reply.body[0] != self.pid:
                continue
            try:
                node = await conn.introspect(name, "/org/ayatana/NotificationItem", timeout=2.0)
            except Exception:
                continue
            for child in node.nodes:
                return name, f"/org/ayatana/NotificationItem/{child.name}/Menu"
        return None

    async def _layout(self) -> DbusItem | None:
        from dbus_fast import Message

        conn = await self._connect()
        try:
            where = await self._locate(conn)
            if where is None:
                return None
            reply = await conn.call(Message(destination=where[0], path=where[1],
                                            interface="com.canonical.dbusmenu", member="GetLayout",
                                            signature="iias", body=[0, -1, []]))
            return _item(reply.body[1])
        finally:
            conn.disconnect()

    def layout(self, timeout: float = 20.0, until: Callable[[DbusItem], bool] = lambda _m: True) -> DbusItem:
        """The whole menu tree, waiting until it exists and ``until(menu)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                menu = asyncio.run(self._layout())
            except Exception:  # the menu is being rebuilt (ids and objects come and go): read again
                menu = None
            if menu is not None and until(menu):
                return menu
            if time.monotonic() > deadline:
                raise AssertionError(f"menu not as expected; last seen: {menu and menu.labels}")
            time.sleep(0.2)

    def event(self, item_id: int) -> str | None:
        """Send a ``clicked`` event for ``item_id``, as a tray host does when the user picks an item;
        returns the error the menu answered (``None``: accepted). dbus-fast hands an error reply back
        as a message instead of raising, so it is read here."""

        async def go() -> str | None:
            from dbus_fast import Message, MessageType, Variant

            conn = await self._connect()
            try:
                where = await self._locate(conn)
                assert where is not None, "no exported menu"
                click = [item_id, "clicked", Variant("s", ""), 0]
                reply = await conn.call(Message(destination=where[0], path=where[1],
                                                interface="com.canonical.dbusmenu", member="Event",
                                                signature="isvu", body=click))
                if reply.message_type is MessageType.ERROR:
                    return f"{reply.error_name}: {reply.body[0] if reply.body else ''}"
                return None
            finally:
                conn.disconnect()

        return asyncio.run(go())

    def click(self, start: str) -> None:
        """Click the item whose label starts with ``start`` (the layout is read afresh; a click the
        menu refused, e.g. on an item a rebuild replaced, is tried again on a fresh layout)."""
        problem: object = None
        for _attempt in range(10):
            try:
                item = self.layout().find(start)
                assert item is not None, f"no menu item {start!r}"
                problem = self.event(item.id)
            except Exception as exc:  # caught the menu mid-rebuild: read the layout again
                problem = exc
            if problem is None:
                return
            time.sleep(0.3)
        raise AssertionError(f"the menu refused the click on {start!r}: {problem}")
