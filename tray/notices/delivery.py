"""Delivering notifications: desktop pop-ups in the tray, stderr lines headless.

:class:`DesktopNotifier` sends each notice on its own worker thread, so the engine loop and the GUI
thread never wait on D-Bus or a subprocess, and a failure is logged, never raised to the caller.
Per platform: Linux and other freedesktop desktops talk to ``org.freedesktop.Notifications`` on the
session bus (:mod:`tray.notices.dbus`: the state's icon, and buttons where the desktop has them);
macOS uses Notification Center from the app bundle and ``osascript`` from a source run
(:mod:`.macos`); Windows shows a toast through PowerShell's WinRT bridge, under an app id registered
for the user first (:func:`register_app_id`: Windows drops toasts from an id it does not know).
Neither has buttons here: the notice's fallback sentence says what to do instead. A notice that
could not be shown is logged as a warning once, saying what to do, until one gets through again;
:attr:`DesktopNotifier.problem` keeps it for the tray's menu.
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

from tray.errors import NoticeError
from tray.notices.alerts import Notice
from tray.notices.dbus import APP_NAME, DBusDelivery, Icons
from tray.notices.macos import macos_delivery

log = logging.getLogger(__name__)

__all__ = ["APP_NAME", "DBusDelivery", "DesktopNotifier", "Notifier", "StderrNotifier", "platform_delivery"]


class Notifier(Protocol):
    def notify(self, notice: Notice) -> None:
        """Show one notification. Never blocks for long and never raises."""

    def close(self) -> None: ...

    @property
    def problem(self) -> str | None:
        """What the user can do so notifications are shown again, in a few words, or ``None``."""


Deliver = Callable[[Notice], None]


class StderrNotifier:
    """Headless: one line per notice on stderr (``serve`` and the no-display fallback)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def notify(self, notice: Notice) -> None:
        stream = self._stream or sys.stderr
        title, body = notice.plain()
        text = " ".join(body.split())
        with contextlib.suppress(OSError, ValueError):
            print(f"{title}: {text}", file=stream, flush=True)

    def close(self) -> None:
        pass

    @property
    def problem(self) -> str | None:
        return None


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

    def __call__(self, notice: Notice) -> None:
        import os

        title, body = notice.plain()
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


def platform_delivery(icon: Path | Icons | None = None, platform: str = sys.platform,
                      on_action: Callable[[str], None] | None = None) -> Deliver:
    """The desktop's own way to show a notification (``on_action`` gets a clicked button's key)."""
    if platform == "darwin":
        return macos_delivery()
    if platform.startswith("win"):
        return WindowsToast(icon if isinstance(icon, Path) or icon is None else icon.get("healthy"))
    return DBusDelivery(icon, on_action=on_action)


class DesktopNotifier:
    """Queue notices and deliver them on a daemon worker thread; failures are logged."""

    def __init__(self, deliver: Deliver | None = None, icon: Path | Icons | None = None,
                 on_action: Callable[[str], None] | None = None) -> None:
        self._deliver = deliver or platform_delivery(icon, on_action=on_action)
        self._failing = False
        self._problem: str | None = None
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def notify(self, notice: Notice) -> None:
        self._queue.put(notice)

    def send(self, title: str, body: str) -> None:
        """A notice with no kind, buttons or state of its own."""
        self.notify(Notice("info", title, body))

    def _run(self) -> None:
        while (notice := self._queue.get()) is not None:
            try:
                self._deliver(notice)
            except Exception as exc:
                self._failed(notice.title, exc)
            else:
                if self._failing:
                    log.info("notifications are shown again")
                self._failing, self._problem = False, None
                log.info("notified: %s", notice.title)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _failed(self, title: str, exc: Exception) -> None:
        """Warn once per run of failures: every notice fails alike while, say, macOS refuses them."""
        if self._failing:
            log.info("could not show the notification %r either", title)
        else:
            log.warning("could not show the notification %r: %s", title, exc)
        self._failing = True
        if isinstance(exc, NoticeError):
            self._problem = exc.brief or str(exc)

    @property
    def problem(self) -> str | None:
        """What to do so notifications are shown, in a few words, while they fail for a reason
        codex-pool can name (macOS refused them); ``None`` otherwise."""
        return self._problem

    def flush(self) -> None:
        """Wait until every queued notice was delivered or failed (tests, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        stop = getattr(self._deliver, "stop", None)
        if stop is not None:
            stop()
