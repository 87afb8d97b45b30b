"""Notifications on macOS, run on any OS: the platform's branch chosen from the executable's path,
desktop-notifier replaced by a recording stand-in that behaves like the real library (it asks for
authorisation once, then answers from the user's setting; a failed send is logged, not raised), and
``osascript`` as a recording runner or, where it is missing, the real ``subprocess.run``."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

import pytest

from tests.fakes.desktop_notifier import Library
from tray.notices.delivery import DesktopNotifier
from tray.notices.macos import (
    NotificationCenter,
    Osascript,
    in_app_bundle,
    macos_delivery,
    osascript_args,
)

BUNDLE = "/Applications/codex-pool.app/Contents/MacOS/codex-pool"
SETTINGS = "System Settings › Notifications"


def deliver_all(notifier: DesktopNotifier, *titles: str) -> None:
    for title in titles:
        notifier.send(title, "body")
    notifier.flush()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("tray.")]


@pytest.mark.parametrize(("executable", "frozen", "bundled"), [
    (BUNDLE, True, True),
    ("/Users/me/dist/codex-pool/codex-pool", True, False),  # a one-folder build without its .app
    ("/Applications/Xcode.app/Contents/MacOS/python3", False, False),  # a source run
    ("/usr/local/bin/python3", False, False),
])
def test_notification_center_only_from_the_app_bundle(executable: str, frozen: bool, bundled: bool) -> None:
    assert in_app_bundle(executable, frozen) is bundled
    chosen = macos_delivery(executable, frozen, library=Library())
    assert isinstance(chosen, NotificationCenter if bundled else Osascript)


def test_the_bundle_shows_notices_through_notification_center() -> None:
    library = Library()
    notifier = DesktopNotifier(macos_delivery(BUNDLE, True, library=library))
    deliver_all(notifier, "codex-pool: quota available again", "codex-pool: account added")
    notifier.close()
    assert library.shown == [("codex-pool: quota available again", "body"),
                             ("codex-pool: account added", "body")]
    assert library.made == [{"app_name": "codex-pool", "app_icon": None}]  # one notifier, kept
    assert notifier.problem is None


def test_refused_notifications_are_reported_once_with_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    library = Library(allowed=False)
    notifier = DesktopNotifier(NotificationCenter(library))
    with caplog.at_level(logging.INFO):
        deliver_all(notifier, "one", "two", "three")
        assert library.shown == []
        [warning] = warnings(caplog)
        assert warning.startswith("could not show the notification 'one': macOS does not allow")
        assert f"Allow Notifications for codex-pool in {SETTINGS}" in warning
        assert notifier.problem == f"Notifications are off: allow codex-pool in {SETTINGS}"

        library.allowed = True  # the user follows the advice
        deliver_all(notifier, "four")
        assert library.shown == [("four", "body")]
        assert notifier.problem is None
        assert "notifications are shown again" in caplog.text

        library.allowed = False  # and changes their mind: a new run of failures, warned again
        deliver_all(notifier, "five", "six")
    notifier.close()
    assert len(warnings(caplog)) == 2


def test_a_send_the_library_only_logged_as_failed_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    notifier = DesktopNotifier(NotificationCenter(Library(failure="UNErrorDomain code 1")))
    with caplog.at_level(logging.WARNING):
        deliver_all(notifier, "one", "two")
    notifier.close()
    [warning] = warnings(caplog)
    assert "Notification Center did not take it (Notification failed: UNErrorDomain code 1)" in warning
    assert f"Check that codex-pool is allowed in {SETTINGS}" in warning


def test_a_library_that_cannot_start_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def DesktopNotifierSync(self, **kwargs: object) -> None:  # the library's name
            raise OSError("Security framework not found")

    notifier = DesktopNotifier(NotificationCenter(Broken()))
    with caplog.at_level(logging.WARNING):
        deliver_all(notifier, "one", "two")
    notifier.close()
    [warning] = warnings(caplog)
    assert "(Security framework not found)" in warning
    assert notifier.problem == f"Notifications fail: check codex-pool in {SETTINGS}"


def test_a_source_run_uses_osascript_and_says_where_script_editor_is_allowed(
        caplog: pytest.LogCaptureFixture) -> None:
    ran: list[list[str]] = []

    def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        assert kwargs["check"] and kwargs["timeout"]
        ran.append(args)
        return subprocess.CompletedProcess(args, 0, b"", b"")

    notifier = DesktopNotifier(Osascript(run))
    with caplog.at_level(logging.INFO, logger="tray.notices"):
        deliver_all(notifier, "one", "two")
    notifier.close()
    assert ran == [osascript_args("one", "body"), osascript_args("two", "body")]
    told = [r.getMessage() for r in caplog.records if "Script Editor" in r.getMessage()]
    assert told == [f"Notifications from a source run are shown as Script Editor's: if none appear, "
                    f"allow Script Editor in {SETTINGS}."]
    assert warnings(caplog) == []


def test_a_failing_osascript_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    def run(args: list[str], **kwargs: Any) -> None:
        raise subprocess.CalledProcessError(1, args, b"", b"execution error: Not authorised (-1743)\n")

    notifier = DesktopNotifier(Osascript(run))
    with caplog.at_level(logging.WARNING):
        deliver_all(notifier, "one", "two")
    notifier.close()
    [warning] = warnings(caplog)
    assert "osascript could not show it (execution error: Not authorised (-1743))" in warning
    assert f"allow Script Editor in {SETTINGS}" in warning


def test_no_osascript_at_all_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """The real ``subprocess.run``: this machine has no ``osascript``."""
    notifier = DesktopNotifier(Osascript())
    with caplog.at_level(logging.WARNING):
        deliver_all(notifier, "one")
    notifier.close()
    [warning] = warnings(caplog)
    assert "osascript could not show it" in warning


def test_osascript_quotes_the_texts() -> None:
    args = osascript_args('Say "hi"', "back\\slash")
    assert args == ["osascript", "-e", 'display notification "back\\\\slash" with title "Say \\"hi\\""']
