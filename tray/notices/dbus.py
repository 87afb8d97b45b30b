"""Desktop notifications on freedesktop desktops: ``org.freedesktop.Notifications`` on the session
bus, with jeepney (pure Python, no gi, so it works the same under any toolkit).

Each notice shows the icon of the pool state it tells of (an exhausted pool's pop-up is not the
green icon). Where the notification server has the ``actions`` capability, a notice's buttons
("Re-login", "Open pool window", ...) are shown and a click comes back as an ``ActionInvoked``
signal, which :class:`DBusDelivery` hands to its ``on_action`` callback with the button's key; where
it has not, the notice's ``fallback`` sentence (how to do the same from the tray menu) is added to
the body instead.

One connection serves every notice (opened at the first, opened again after a failure): the
signals come on the connection that sent the notice, and jeepney's router reads it on a thread of
its own, so nobody calling us waits on an idle connection. Buttons are kept for
:data:`KEEP_ACTIONS` notices; a click on an older one is ignored. Calls come from one thread (the
notifier's worker); ``on_action`` runs on the ``notify-actions`` thread and must not block.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tray.health import Health
from tray.notices.alerts import Notice

log = logging.getLogger(__name__)

APP_NAME = "codex-pool"
BUS_NAME = "org.freedesktop.Notifications"
BUS_PATH = "/org/freedesktop/Notifications"
KEEP_ACTIONS = 50  # notices whose buttons still act when clicked
Icons = Mapping[Health, Path]


class DBusDelivery:
    """``Notify`` on the session bus; ``icon`` is one picture for every notice or one per state."""

    def __init__(self, icon: Path | Icons | None = None, timeout: float = 5.0,
                 on_action: Callable[[str], None] | None = None) -> None:
        self._icons: Icons = {} if icon is None or isinstance(icon, Path) else dict(icon)
        self._icon = str(icon) if isinstance(icon, Path) else ""
        self._timeout = timeout
        self._on_action = on_action
        self._router: Any = None
        self._conn: Any = None
        self._capabilities: frozenset[str] = frozenset()
        self._buttons: dict[int, frozenset[str]] = {}  # notification id -> its action keys
        self._lock = threading.Lock()  # _buttons: written by the sender, read by the listener
        self._signals: queue.Queue[Any] = queue.Queue()
        self._listener: threading.Thread | None = None

    def __call__(self, notice: Notice) -> None:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import unwrap_msg

        router = self._open()
        buttons = self._on_action is not None and bool(notice.actions) and "actions" in self._capabilities
        body = notice.body
        if notice.fallback and not buttons:
            body = f"{body}\n{notice.fallback}"
        actions = [part for key, label in notice.actions for part in (key, label)] if buttons else []
        icon = str(self._icons[notice.state]) if notice.state in self._icons else self._icon
        address = DBusAddress(BUS_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
        message = new_method_call(address, "Notify", "susssasa{sv}i",
                                  (APP_NAME, 0, icon, notice.title, body, actions, {}, -1))
        try:
            (nid,) = unwrap_msg(router.send_and_get_reply(message, timeout=self._timeout))
        except Exception:
            self.close()  # the server or the bus went away: a fresh connection next time
            raise
        if buttons:
            with self._lock:
                self._buttons[int(nid)] = frozenset(key for key, _ in notice.actions)
                for old in list(self._buttons)[:-KEEP_ACTIONS]:
                    del self._buttons[old]

    def _open(self) -> Any:
        """The router, opened (with the server's capabilities read and the signals subscribed)
        when there is none yet."""
        if self._router is not None:
            return self._router
        from jeepney import DBusAddress, MatchRule, message_bus, new_method_call
        from jeepney.io.threading import DBusRouter, Proxy, open_dbus_connection
        from jeepney.wrappers import unwrap_msg

        conn = open_dbus_connection(bus="SESSION")
        router = DBusRouter(conn)
        try:
            address = DBusAddress(BUS_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
            asked = new_method_call(address, "GetCapabilities")
            reply = router.send_and_get_reply(asked, timeout=self._timeout)
            self._capabilities = frozenset(unwrap_msg(reply)[0])
            if self._on_action is not None and "actions" in self._capabilities:
                rule = MatchRule(type="signal", interface=BUS_NAME, path=BUS_PATH)
                Proxy(message_bus, router, timeout=self._timeout).AddMatch(rule)
                router.filter(rule, queue=self._signals, bufsize=0)
                if self._listener is None:
                    self._listener = threading.Thread(target=self._listen, name="notify-actions", daemon=True)
                    self._listener.start()
        except Exception:
            router.close()
            conn.close()
            raise
        self._router, self._conn = router, conn
        return router

    def _listen(self) -> None:
        from jeepney.low_level import HeaderFields

        while (message := self._signals.get()) is not None:
            try:
                member = message.header.fields.get(HeaderFields.member)
                if member == "ActionInvoked":
                    nid, key = message.body
                    with self._lock:
                        known = key in self._buttons.get(int(nid), frozenset())
                    if known and self._on_action is not None:
                        self._on_action(str(key))
                elif member == "NotificationClosed":
                    with self._lock:
                        self._buttons.pop(int(message.body[0]), None)
            except Exception:  # a strange signal or a failing callback must not end the listener
                log.exception("notification action failed")

    def close(self) -> None:
        """Close the connection (the listener stays for the next one; :meth:`stop` ends it)."""
        router, conn, self._router, self._conn = self._router, self._conn, None, None
        if router is not None:
            with contextlib.suppress(Exception):
                router.close()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def stop(self) -> None:
        self.close()
        if self._listener is not None:
            self._signals.put(None)
            self._listener.join(timeout=5)
            self._listener = None
