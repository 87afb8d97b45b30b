"""Desktop notifications: captured by the fake notification server on a private session bus."""

from __future__ import annotations

import io
import logging
import queue
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.gui_fixtures import Notes
from tray.notices.alerts import Notice
from tray.notices.delivery import (
    DBusDelivery,
    DesktopNotifier,
    StderrNotifier,
    WindowsToast,
    platform_delivery,
)
from tray.notices.macos import Osascript


@pytest.fixture
def bus_env(session_bus: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    return session_bus


@pytest.mark.gui
def test_notices_reach_the_notification_server(bus_env: str, notifications: Notes, tmp_path: Path) -> None:
    icon = tmp_path / "icon.png"
    notifier = DesktopNotifier(DBusDelivery(icon))
    notifier.send("codex-pool: every account is out of quota", "Requests get a 429 until 14:05.")
    notifier.send("codex-pool: spare@x.com needs a new login", "Sign in again.")
    notifier.flush()
    notifier.close()
    got = notifications.wait(2)
    assert [(n["summary"], n["body"]) for n in got] == [
        ("codex-pool: every account is out of quota", "Requests get a 429 until 14:05."),
        ("codex-pool: spare@x.com needs a new login", "Sign in again."),
    ]
    assert {n["app_name"] for n in got} == {"codex-pool"}
    assert got[0]["app_icon"] == str(icon)


@pytest.mark.gui
def test_no_notification_service_is_logged_not_raised(bus_env: str, caplog: pytest.LogCaptureFixture) -> None:
    notifier = DesktopNotifier(DBusDelivery())
    with caplog.at_level(logging.WARNING, logger="tray.notices.delivery"):
        notifier.send("codex-pool: config has problems", "port: not a number")
        notifier.flush()
    notifier.close()
    assert "could not show the notification 'codex-pool: config has problems'" in caplog.text


def test_no_session_bus_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    notifier = DesktopNotifier(DBusDelivery())
    with caplog.at_level(logging.WARNING, logger="tray.notices.delivery"):
        notifier.send("codex-pool: quota available again", "Requests are served again.")
        notifier.flush()
    notifier.close()
    assert "could not show the notification" in caplog.text


def test_a_failing_delivery_never_stops_the_next_one() -> None:
    shown: list[str] = []

    def deliver(notice: Notice) -> None:
        if notice.title == "boom":
            raise OSError("no service")
        shown.append(notice.title)

    notifier = DesktopNotifier(deliver)
    for title in ("boom", "one", "boom", "two"):
        notifier.send(title, "")
    notifier.flush()
    notifier.close()
    assert shown == ["one", "two"]


def test_headless_notices_are_one_line_on_stderr() -> None:
    out = io.StringIO()
    StderrNotifier(out).notify(Notice("config-invalid", "codex-pool: config problem",
                                      "These fell back:\n• port: not a number",
                                      actions=(("config", "Open config file"),), fallback="Fix the file."))
    assert out.getvalue() == ("codex-pool: config problem: These fell back: • port: not a number "
                              "Fix the file.\n")


def test_each_platform_has_its_own_delivery() -> None:
    assert isinstance(platform_delivery(platform="darwin"), Osascript)  # a source run: no app bundle
    assert isinstance(platform_delivery(platform="win32"), WindowsToast)
    assert isinstance(platform_delivery(platform="linux"), DBusDelivery)
    assert isinstance(platform_delivery(platform="freebsd14"), DBusDelivery)


LOGIN = Notice("needs-login", "codex-pool: spare@x.com needs a new login",
               "It is left out of routing until you sign in again.",
               actions=(("relogin:2", "Re-login"), ("window", "Open pool window")),
               fallback="Tray menu → its line → Re-login….")
OUT = Notice("pool-exhausted", "codex-pool: pool exhausted", "Every account is at its usage limit.",
             state="exhausted")


@pytest.mark.gui
def test_each_notice_shows_the_icon_of_its_state(bus_env: str, notifications: Notes, tmp_path: Path) -> None:
    icons = {state: tmp_path / f"{state}.png" for state in ("healthy", "degraded", "exhausted", "stopped")}
    notifier = DesktopNotifier(DBusDelivery(icons))  # type: ignore[arg-type]
    notifier.notify(OUT)
    notifier.notify(replace(OUT, kind="pool-available", title="codex-pool: quota available again",
                            state="healthy"))
    notifier.flush()
    notifier.close()
    got = notifications.wait(2)
    assert [n["app_icon"] for n in got] == [str(icons["exhausted"]), str(icons["healthy"])]


@pytest.mark.gui
def test_buttons_where_the_desktop_has_them_and_a_click_comes_back(
        bus_env: str, notifications_with_actions: Notes) -> None:
    clicked: queue.Queue[str] = queue.Queue()
    notifier = DesktopNotifier(DBusDelivery(on_action=clicked.put))
    notifier.notify(LOGIN)
    notifier.flush()
    shown = notifications_with_actions.wait(1)[0]
    assert shown["actions"] == [["relogin:2", "Re-login"], ["window", "Open pool window"]]
    assert shown["body"] == "It is left out of routing until you sign in again."  # the buttons say the rest
    notifications_with_actions.click(shown["id"], "relogin:2")
    assert clicked.get(timeout=10) == "relogin:2"
    notifier.close()


@pytest.mark.gui
def test_without_buttons_the_body_says_what_to_do(bus_env: str, notifications: Notes) -> None:
    notifier = DesktopNotifier(DBusDelivery(on_action=lambda _key: None))
    notifier.notify(LOGIN)
    notifier.flush()
    notifier.close()
    shown = notifications.wait(1)[0]
    assert shown["actions"] == []
    assert shown["body"] == ("It is left out of routing until you sign in again.\n"
                             "Tray menu → its line → Re-login….")
    assert f"{shown['summary']} {shown['body']}".count("spare@x.com") == 1
def test_windows_toasts_register_their_app_id_first() -> None:
    """A recording stand-in for winreg: the id's name and icon land under HKCU (the real registry
    is exercised on Windows CPython by tests/test_wine.py)."""
    from pathlib import Path
    from typing import Any

    from tray.notices.delivery import APP_ID_KEY, register_app_id

    written: dict[str, Any] = {}

    class Key:
        def __enter__(self) -> Key:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    class Winreg:
        HKEY_CURRENT_USER, REG_SZ = "HKCU", 1

        def CreateKey(self, root: str, path: str) -> Key:
            written["key"] = (root, path)
            return Key()

        def SetValueEx(self, key: Key, name: str, reserved: int, kind: int, value: str) -> None:
            written[name] = value

    register_app_id(Path("/icons/codex-pool.png"), Winreg())
    assert written == {"key": ("HKCU", APP_ID_KEY), "DisplayName": "codex-pool",
                       "IconUri": str(Path("/icons/codex-pool.png"))}
