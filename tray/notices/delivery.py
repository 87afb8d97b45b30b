"""Delivering notifications: desktop pop-ups in the tray, stderr lines headless.

:class:`DesktopNotifier` sends each notice on its own worker thread, so the engine loop and the GUI
thread never wait on D-Bus or a subprocess, and a failure is logged, never raised to the caller.
Per platform: Linux and other freedesktop desktops talk to ``org.freedesktop.Notifications`` on the
session bus with jeepney (pure Python, no gi, so it works the same under any toolkit); macOS runs
``osascript``; Windows shows a toast through PowerShell's WinRT bridge, under an app id registered
for the user first (:func:`register_app_id`: Windows drops toasts from an id it does not know).
:class:`StderrNotifier` is what headless ``serve`` uses.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

log = logging.getLogger(__name__)

APP_NAME = "codex-pool"
_BUS_NAME = "org.freedesktop.Notifications"
_BUS_PATH = "/org/freedesktop/Notifications"


class Notifier(Protocol):
    def send(self, title: str, body: str) -> None:
        """Show one notification. Never blocks for long and never raises."""

    def close(self) -> None: ...


Deliver = Callable[[str, str], None]


class StderrNotifier:
    """Headless: one line per notice on stderr (``serve`` and the no-display fallback)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def send(self, title: str, body: str) -> None:
        stream = self._stream or sys.stderr
        text = " ".join(body.split())
        with contextlib.suppress(OSError, ValueError):
            print(f"{title}: {text}", file=stream, flush=True)

    def close(self) -> None:
        pass


class DBusDelivery:
    """``Notify`` on the session bus, over a connection opened for each notice and closed after it:
    notices are rare, and an idle connection that never reads would stall anyone who calls it."""

    def __init__(self, icon: Path | None = None, timeout: float = 5.0) -> None:
        self._icon = str(icon) if icon else ""
        self._timeout = timeout

    def __call__(self, title: str, body: str) -> None:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import unwrap_msg

        address = DBusAddress(_BUS_PATH, bus_name=_BUS_NAME, interface=_BUS_NAME)
        message = new_method_call(
            address, "Notify", "susssasa{sv}i",
            (APP_NAME, 0, self._icon, title, body, [], {}, -1),
        )
        with open_dbus_connection(bus="SESSION") as conn:
            unwrap_msg(conn.send_and_get_reply(message, timeout=self._timeout))


def osascript_args(title: str, body: str) -> list[str]:
    """The ``osascript`` command line that shows one notification (texts quoted for AppleScript)."""

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ["osascript", "-e", f"display notification {quote(body)} with title {quote(title)}"]


def _osascript(title: str, body: str) -> None:
    subprocess.run(osascript_args(title, body), check=True, timeout=10, capture_output=True)


_TOAST = """
$m = [Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType=WindowsRuntime]
$t = [Windows.UI.Notifications.ToastNotificationManager]::GetTemplateContent(1)
$n = $t.GetElementsByTagName('text')
$n.Item(0).AppendChild($t.CreateTextNode($env:CP_TITLE)) > $null
$n.Item(1).AppendChild($t.CreateTextNode($env:CP_BODY)) > $null
$toast = [Windows.UI.Notifications.ToastNotification]::new($t)
[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier('codex-pool').Show($toast)
"""


APP_ID_KEY = r"Software\Classes\AppUserModelId\codex-pool"  # HKEY_CURRENT_USER


def register_app_id(icon: Path | None = None, winreg: Any = None) -> None:
    """Make the toast app id ``codex-pool`` known to Windows for this user (its name and icon in
    the notification); toasts from an unknown id are dropped without an error."""
    reg = winreg if winreg is not None else importlib.import_module("winreg")
    with reg.CreateKey(reg.HKEY_CURRENT_USER, APP_ID_KEY) as key:
        reg.SetValueEx(key, "DisplayName", 0, reg.REG_SZ, APP_NAME)
        if icon is not None:
            reg.SetValueEx(key, "IconUri", 0, reg.REG_SZ, str(icon))


class WindowsToast:
    """A toast through PowerShell's WinRT bridge, the app id registered before the first one."""

    def __init__(self, icon: Path | None = None) -> None:
        self._icon = icon
        self._registered = False

    def __call__(self, title: str, body: str) -> None:
        import os

        if not self._registered:
            register_app_id(self._icon)
            self._registered = True
        # The texts travel in the environment, so nothing in them is parsed as PowerShell.
        env = dict(os.environ, CP_TITLE=title, CP_BODY=body)
        subprocess.run(
            ["powershell", "-NoProfile", "-NonInteractive", "-Command", _TOAST],
            check=True, timeout=15, capture_output=True, env=env,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )


def platform_delivery(icon: Path | None = None, platform: str = sys.platform) -> Deliver:
    """The desktop's own way to show a notification."""
    if platform == "darwin":
        return _osascript
    if platform.startswith("win"):
        return WindowsToast(icon)
    return DBusDelivery(icon)


class DesktopNotifier:
    """Queue notices and deliver them on a daemon worker thread; failures are logged."""

    def __init__(self, deliver: Deliver | None = None, icon: Path | None = None) -> None:
        self._deliver = deliver or platform_delivery(icon)
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def send(self, title: str, body: str) -> None:
        self._queue.put((title, body))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            title, body = item
            try:
                self._deliver(title, body)
                log.info("notified: %s", title)
            except Exception as exc:
                log.warning("could not show the notification %r: %s", title, exc)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued notice was delivered or failed (tests, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
