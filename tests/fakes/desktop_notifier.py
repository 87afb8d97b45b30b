"""A stand-in for the ``desktop_notifier`` module (macOS Notification Center), injected where the
real one would be imported: it records what it was asked, and behaves like the real library on a
Mac: authorisation is asked for once, then answered from the user's setting; a notice the user did
not allow is dropped without a word; a send that fails is logged as a warning, never raised."""

from __future__ import annotations

import logging
from typing import Any


class Library:
    """Stands in for the ``desktop_notifier`` module; ``allowed`` is the user's answer, and
    ``failure`` makes a send fail the way the real one reports it: a warning, no exception."""

    def __init__(self, allowed: bool = True, failure: str | None = None) -> None:
        self.allowed = allowed
        self.failure = failure
        self.made: list[dict[str, Any]] = []
        self.asked = 0
        self.shown: list[tuple[str, str]] = []
        library = self

        class DesktopNotifierSync:
            def __init__(self, app_name: str = "Python", app_icon: object = "python.png") -> None:
                library.made.append({"app_name": app_name, "app_icon": app_icon})

            def request_authorisation(self) -> bool:
                library.asked += 1
                return library.allowed

            def send(self, title: str, message: str) -> str:
                if library.failure is not None:
                    logging.getLogger("desktop_notifier.backends.base").warning(
                        "Notification failed: %s", library.failure)
                elif library.allowed:  # macOS drops what the user did not allow, silently
                    library.shown.append((title, message))
                return "id"

        self.DesktopNotifierSync = DesktopNotifierSync
