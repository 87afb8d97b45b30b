"""A pystray backend for tests that records which thread runs each change to the icon.

It is a subclass of pystray's base icon, put in place of the ``dummy`` backend's (select
``PYSTRAY_BACKEND=dummy``, then :func:`install`). Its loop behaves like pystray's Windows backend,
the strictest of the three: a message loop on the thread that called ``run()``, a hidden window
(``_hwnd``) and a table of message handlers (``_message_handlers``) that anyone may post to from any
thread (:meth:`RecordingIcon.post_message`, as ``PostMessage``), and a right click that shows the
menu in a modal loop on that same thread, during which posted messages are still dispatched
(:meth:`RecordingIcon.open_menu`, :meth:`RecordingIcon.close_menu`). The tooltip goes into a
``WCHAR[128]`` as ``szTip`` does, so a longer one raises like the real backend. Every change made
off the loop's thread, and a menu rebuilt while it is open, is recorded as a violation.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from typing import Any

WM_NOTIFY = 0x400 + 11  # pystray's own numbers
_STOP = -1
_CLOSE_MENU = -2


def icon_class() -> type[Any]:
    from pystray import _base

    class RecordingIcon(_base.Icon):  # type: ignore[misc]  # pystray has no type information
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.records: list[tuple[str, str]] = []
            self.violations: list[str] = []
            self.loop_thread: threading.Thread | None = None
            self.menu_on_screen = False
            self._messages: queue.Queue[int] = queue.Queue()
            self._hwnd: int | None = None
            super().__init__(*args, **kwargs)
            self._message_handlers = {WM_NOTIFY: self._on_notify}

        # -- what tests call, from any thread ---------------------------------------------------

        def post_message(self, hwnd: int, message: int) -> None:
            assert hwnd == self._hwnd
            self._messages.put(message)

        def open_menu(self) -> None:
            self._messages.put(WM_NOTIFY)

        def close_menu(self) -> None:
            self._messages.put(_CLOSE_MENU)

        # -- the backend ---------------------------------------------------------------------------

        def _record(self, what: str) -> None:
            thread = threading.current_thread()
            self.records.append((what, thread.name))
            if thread is not self.loop_thread:
                self.violations.append(f"{what} on {thread.name}, not on the loop's thread")

        def _show(self) -> None:
            self._record("show")

        def _hide(self) -> None:
            self._record("hide")

        def _update_icon(self) -> None:
            self._record("icon")

        def _update_title(self) -> None:
            self._record("title")
            (ctypes.c_wchar * 128)().value = self.title  # szTip: ValueError when too long

        def _update_menu(self) -> None:
            if self.loop_thread is None:
                return  # pystray sets the first menu in __init__, before any loop
            self._record("menu")
            if self.menu_on_screen:
                self.violations.append("menu rebuilt while it was open")

        def _run(self) -> None:
            self.loop_thread = threading.current_thread()
            self._hwnd = 1
            self._mark_ready()
            self._loop(until=_STOP)
            self._hwnd = None

        def _loop(self, until: int) -> None:
            while (message := self._messages.get()) != until:
                if message in (_STOP, _CLOSE_MENU):
                    continue
                handler = self._message_handlers.get(message)
                if handler is not None:
                    handler(0, 0)

        def _on_notify(self, wparam: int, lparam: int) -> None:
            self.menu_on_screen = True  # TrackPopupMenuEx: modal, still dispatches messages
            try:
                self._loop(until=_CLOSE_MENU)
            finally:
                self.menu_on_screen = False

        def _stop(self) -> None:
            self._record("stop")
            self._messages.put(_STOP)

    return RecordingIcon
