"""Ctrl+C, SIGTERM and (Windows) Ctrl+Break end the tray the way Quit does, on every OS.

On Linux the GLib loop takes the signals itself (``GLib.unix_signal_add``, see the app). On macOS
and Windows the main thread sits in AppKit's or Win32's own loop, where a Python signal handler
runs only when that loop next calls into Python, which may be never. So the C-level handler's wakeup
byte (``signal.set_wakeup_fd``) goes to a socket that a small thread watches; that thread calls
``on_signal``, which hands the stop to the GUI thread through the tray's dispatcher.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def stop_signal_names(platform: str = sys.platform) -> tuple[str, ...]:
    """The signals that stop codex-pool on ``platform``: Windows adds SIGBREAK (Ctrl+Break)."""
    return ("SIGINT", "SIGTERM", "SIGBREAK") if platform == "win32" else ("SIGINT", "SIGTERM")


def stop_signals(platform: str = sys.platform) -> list[signal.Signals]:
    """:func:`stop_signal_names` that this Python has."""
    found = (getattr(signal, name, None) for name in stop_signal_names(platform))
    return [sig for sig in found if isinstance(sig, signal.Signals)]


class SignalWatcher:
    """Calls ``on_signal`` on a thread of its own when a stop signal arrives (main thread only:
    construct it before the GUI loop starts). :meth:`close` puts everything back."""

    def __init__(self, on_signal: Callable[[], None]) -> None:
        self._on_signal = on_signal
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {sig: signal.signal(sig, self._noted) for sig in stop_signals()}
        self._thread = threading.Thread(target=self._watch, name="signals", daemon=True)
        self._thread.start()

    def _noted(self, signum: int, frame: FrameType | None) -> None:
        """The Python-level handler: nothing to do, the wakeup byte already went out."""

    def _watch(self) -> None:
        while True:
            try:
                data = self._reader.recv(64)
            except OSError:
                return
            if not data:
                return
            log.info("signal %s: quitting", ", ".join(str(b) for b in data))
            try:
                self._on_signal()
            except Exception:
                log.exception("could not stop on a signal")

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # not on the main thread: leave the handlers
            signal.set_wakeup_fd(self._previous_fd)
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
        self._writer.close()
        with contextlib.suppress(OSError):
            self._reader.shutdown(socket.SHUT_RDWR)
        self._reader.close()
