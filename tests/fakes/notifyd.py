"""A fake ``org.freedesktop.Notifications`` server for tests (dbus-fast).

Run as ``python -m tests.fakes.notifyd <log.jsonl> [--actions]`` on a private session bus: it
claims the name, prints ``ready`` and appends one JSON line per ``Notify`` call (with the buttons
asked for). With ``--actions`` it advertises the ``actions`` capability, as GNOME, KDE and most
desktops do, and ``Click(id, key)`` (a test's stand-in for the user) emits ``ActionInvoked`` for a
button it showed, as a real server does, then closes the notification; a key it did not show is an
error. dbus-fast answers ``Introspect`` by itself, so every client library works against it.
"""
# dbus-fast reads D-Bus signatures from the annotations, so they stay strings ("s", "as", ...).
# ruff: noqa: F821, F722

import asyncio
import itertools
import json
import sys
from typing import Any, TextIO

from dbus_fast.aio import MessageBus
from dbus_fast.constants import RequestNameReply
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, method, signal


class Notifications(ServiceInterface):  # type: ignore[misc]
    def __init__(self, out: TextIO, actions: bool = False) -> None:
        super().__init__("org.freedesktop.Notifications")
        self._out = out
        self._ids = itertools.count(1)
        self._actions = actions
        self._shown: dict[int, list[str]] = {}  # id -> the keys of the buttons it shows

    @method()  # type: ignore[misc]
    def Notify(
        self, app_name: "s", replaces_id: "u", app_icon: "s", summary: "s", body: "s",
        actions: "as", hints: "a{sv}", expire_timeout: "i",
    ) -> "u":
        nid = replaces_id or next(self._ids)
        buttons = list(zip(actions[::2], actions[1::2], strict=False)) if self._actions else []
        self._shown[nid] = [key for key, _ in buttons]
        row = {"app_name": app_name, "summary": summary, "body": body, "app_icon": app_icon, "id": nid,
               "actions": [list(b) for b in buttons]}
        self._out.write(json.dumps(row) + "\n")
        return nid

    @method()  # type: ignore[misc]
    def GetCapabilities(self) -> "as":
        return ["body", "icon-static", "persistence", *(["actions"] if self._actions else [])]

    @method()  # type: ignore[misc]
    def Click(self, nid: "u", key: "s") -> None:
        if key not in self._shown.get(nid, []):
            raise DBusError("org.freedesktop.DBus.Error.InvalidArgs",
                            f"notification {nid} has no button {key!r}")
        self.ActionInvoked(nid, key)
        self._shown.pop(nid, None)
        self.NotificationClosed(nid, 2)  # closed by the user's click

    @signal()  # type: ignore[misc]
    def ActionInvoked(self, nid: Any, key: Any) -> "us":
        return [nid, key]

    @method()  # type: ignore[misc]
    def GetServerInformation(self) -> "ssss":
        return ["fake-notifyd", "codex-pool tests", "1.0", "1.2"]

    @method()  # type: ignore[misc]
    def CloseNotification(self, nid: "u") -> None:
        self.NotificationClosed(nid, 3)

    @signal()  # type: ignore[misc]
    def NotificationClosed(self, nid: Any, reason: Any) -> "uu":
        return [nid, reason]


async def main(path: str, actions: bool = False) -> None:
    with open(path, "a", buffering=1, encoding="utf-8") as out:
        bus = await MessageBus().connect()
        bus.export("/org/freedesktop/Notifications", Notifications(out, actions))
        reply = await bus.request_name("org.freedesktop.Notifications")
        if reply != RequestNameReply.PRIMARY_OWNER:
            raise SystemExit(f"could not own the name: {reply}")
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], "--actions" in sys.argv[2:]))
