"""What differs between pystray's backends: the one door onto the backend's own thread, and how long
a tooltip may be.

Every change to the tray icon (picture, tooltip, menu, visibility, stop) must run on the thread
that runs the backend's loop. pystray does not marshal these itself: its macOS backend calls AppKit
from whichever thread sets ``icon.menu`` (AppKit may crash off the main thread), and its Windows
backend rebuilds the menu at once, destroying one that may be open on screen. So :class:`TrayIcon`
hands each update to a :data:`Dispatcher` made for its backend by :func:`dispatcher_for`:

* GTK and AppIndicator (Linux): ``GLib.idle_add``.
* macOS: ``PyObjCTools.AppHelper.callAfter``, which runs the call on the AppKit main thread.
* Windows: a private window message posted to the icon's hidden window
  (:class:`Win32Dispatcher`); its handler runs on the message loop's thread, and waits while the
  icon's menu is open (Windows shows it in a modal loop on that same thread).
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Call = Callable[[], None]
Dispatcher = Callable[[Call], None]
Post = Callable[[Any, int], None]  # (window handle, message)

WM_USER = 0x400
WM_CALL = WM_USER + 20  # pystray's own messages are WM_USER + 10 and + 11

# NOTIFYICONDATAW.szTip is WCHAR[128]: 127 UTF-16 code units and the terminating NUL. pystray
# raises on a longer title, after the picture changed and before the menu did.
TOOLTIP_LIMITS = {"win32": 127}
ELLIPSIS = "…"


def _run(fn: Call) -> None:
    try:
        fn()
    except Exception:
        log.exception("tray update failed")


def glib_dispatcher() -> Dispatcher:
    from gi.repository import GLib

    def dispatch(fn: Call) -> None:
        def once() -> bool:
            _run(fn)
            return False  # run once

        GLib.idle_add(once)

    return dispatch


def appkit_dispatcher() -> Dispatcher:
    from PyObjCTools import AppHelper

    def dispatch(fn: Call) -> None:
        AppHelper.callAfter(_run, fn)

    return dispatch


def _post_message(hwnd: Any, message: int) -> None:
    from pystray._util import win32

    win32.PostMessage(hwnd, message, 0, 0)


class Win32Dispatcher:
    """Runs calls on the thread of a Win32 message loop: each call is queued and a private message
    posted to the icon's window (``icon._hwnd``); the loop's handler (registered in
    ``icon._message_handlers``, pystray's table) runs the queue. While ``icon._menu_open`` is set the
    queue waits: :func:`menu_closed` runs it once the menu is gone. Calls made before the window
    exists run with the first call after it does."""

    def __init__(self, icon: Any, post: Post | None = None) -> None:
        self._icon = icon
        self._post = post or _post_message
        self._queue: collections.deque[Call] = collections.deque()
        self._lock = threading.Lock()
        icon._message_handlers[WM_CALL] = self._on_message

    def __call__(self, fn: Call) -> None:
        with self._lock:
            self._queue.append(fn)
        hwnd = getattr(self._icon, "_hwnd", None)
        if hwnd:
            self._post(hwnd, WM_CALL)

    def _on_message(self, wparam: int, lparam: int) -> int:
        self.run_queued()
        return 0

    def run_queued(self) -> None:
        """Run what is queued (on the loop's thread), unless the icon's menu is open."""
        while not getattr(self._icon, "_menu_open", False):
            with self._lock:
                if not self._queue:
                    return
                fn = self._queue.popleft()
            _run(fn)


def dispatcher_for(backend: str, icon: Any) -> Dispatcher:
    """The door onto ``icon``'s backend thread, by pystray backend name."""
    if backend == "darwin":
        return appkit_dispatcher()
    if backend == "win32":
        return Win32Dispatcher(icon)
    return glib_dispatcher()


def tooltip_units(text: str) -> int:
    """Length in UTF-16 code units, as Windows counts (a character outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def fit_tooltip(text: str, platform: str = sys.platform) -> str:
    """``text`` shortened to what the platform's tray shows: whole lines are dropped from the end
    (the first line says the pool's state), and a first line that is still too long is cut with an
    ellipsis. Unchanged where there is no limit."""
    limit = TOOLTIP_LIMITS.get(platform)
    if limit is None or tooltip_units(text) <= limit:
        return text
    lines = text.split("\n")
    while len(lines) > 1 and tooltip_units("\n".join(lines)) > limit:
        lines.pop()
    kept = "\n".join(lines)
    if tooltip_units(kept) <= limit:
        return kept
    cut = ""
    for char in kept:
        if tooltip_units(cut + char + ELLIPSIS) > limit:
            break
        cut += char
    return cut + ELLIPSIS
