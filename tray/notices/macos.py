"""Notifications on macOS: Notification Center from the app bundle, ``osascript`` from a source run.

macOS shows a notification only for an app the user has allowed, and drops the others without a
word. The frozen ``codex-pool.app`` uses ``UNUserNotificationCenter`` through desktop-notifier
(:class:`NotificationCenter`): macOS asks the user once, and afterwards tells whether the answer was
yes. That API works only from an app bundle; from a source run the library would fall back to a
stand-in that drops every notice, so there ``osascript display notification`` shows them
(:class:`Osascript`). macOS attributes those to Script Editor and cannot say whether it shows them,
so the first one logs where to allow them.

A notice that could not be shown raises :class:`~tray.errors.NoticeError` saying what to do;
:class:`~tray.notices.delivery.DesktopNotifier` reports it once.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tray.errors import NoticeError, NoticesRefused
from tray.notices.alerts import Notice

log = logging.getLogger(__name__)

APP_NAME = "codex-pool"
SETTINGS = "System Settings › Notifications"
LIBRARY = "desktop_notifier"


def in_app_bundle(executable: str, frozen: bool) -> bool:
    """Whether this process is the frozen ``codex-pool.app`` (``….app/Contents/MacOS/codex-pool``):
    Notification Center serves only apps with a bundle."""
    macos = Path(executable).parent
    return frozen and macos.name == "MacOS" and macos.parent.name == "Contents" \
        and macos.parent.parent.suffix == ".app"


def osascript_args(title: str, body: str) -> list[str]:
    """The ``osascript`` command line that shows one notification (texts quoted for AppleScript)."""

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ["osascript", "-e", f"display notification {quote(body)} with title {quote(title)}"]


class Osascript:
    """``display notification`` through ``osascript``: for a source run, which has no bundle."""

    def __init__(self, run: Any = subprocess.run) -> None:
        self._run = run
        self._told = False

    def __call__(self, notice: Notice) -> None:
        title, body = notice.plain()
        if not self._told:
            self._told = True
            log.info("Notifications from a source run are shown as Script Editor's: if none appear, "
                     "allow Script Editor in %s.", SETTINGS)
        try:
            self._run(osascript_args(title, body), check=True, timeout=10, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise NoticeError(
                f"osascript could not show it ({_detail(exc)}). Notifications from a source run are "
                f"shown as Script Editor's: allow Script Editor in {SETTINGS}.",
                brief=f"Notifications fail: allow Script Editor in {SETTINGS}",
            ) from exc


class NotificationCenter:
    """``UNUserNotificationCenter`` through desktop-notifier's synchronous API, for the app bundle.

    ``library`` is the ``desktop_notifier`` module (imported on the first notice; tests pass a
    stand-in). The notifier is made and used on the calling thread only (the notify worker): its
    event loop belongs to that thread. The library logs a failed send instead of raising it, so its
    warnings during a send are collected and raised as :class:`~tray.errors.NoticeError`.
    """

    def __init__(self, library: Any = None) -> None:
        self._library = library
        self._notifier: Any = None

    def __call__(self, notice: Notice) -> None:
        title, body = notice.plain()
        with _LibraryWarnings() as warnings:
            try:
                if self._notifier is None:
                    library = self._library or importlib.import_module(LIBRARY)
                    self._notifier = library.DesktopNotifierSync(app_name=APP_NAME, app_icon=None)
                # The first call asks the user; later ones return the answer without asking.
                allowed = bool(self._notifier.request_authorisation())
                if allowed:
                    self._notifier.send(title=title, message=body)
            except Exception as exc:
                raise NoticeError(
                    f"Notification Center did not take it ({_detail(exc)}). Check that codex-pool "
                    f"is allowed in {SETTINGS}.",
                    brief=f"Notifications fail: check codex-pool in {SETTINGS}",
                ) from exc
        if not allowed:
            raise NoticesRefused(
                f"macOS does not allow codex-pool's notifications: turn on Allow Notifications "
                f"for codex-pool in {SETTINGS}.",
                brief=f"Notifications are off: allow codex-pool in {SETTINGS}",
            )
        if warnings.messages:
            raise NoticeError(
                f"Notification Center did not take it ({warnings.messages[-1]}). Check that "
                f"codex-pool is allowed in {SETTINGS}.",
                brief=f"Notifications fail: check codex-pool in {SETTINGS}",
            )


def macos_delivery(executable: str = sys.executable, frozen: bool | None = None,
                   library: Any = None) -> NotificationCenter | Osascript:
    """Notification Center in the app bundle, ``osascript`` elsewhere."""
    bundled = in_app_bundle(executable, getattr(sys, "frozen", False) if frozen is None else frozen)
    return NotificationCenter(library) if bundled else Osascript()


class _LibraryWarnings(logging.Handler):
    """The library's warnings logged on this thread while the block runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._thread = threading.get_ident()
        self._logger = logging.getLogger(LIBRARY)

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread:
            self.messages.append(record.getMessage())

    def __enter__(self) -> _LibraryWarnings:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)


def _detail(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        err = exc.stderr.decode(errors="replace").strip() if isinstance(exc.stderr, bytes) else ""
        return err.splitlines()[-1] if err else f"exit status {exc.returncode}"
    return str(exc) or type(exc).__name__
