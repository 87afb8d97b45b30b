"""The ``codex-pool`` main command: one tray per pool, the headless fallback, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.desktop.test_tray import prepare_pool, start_tray, stop, tray_shot, wait_for
from tests.fakes.desktop_notifier import Library
from tests.support.gui_fixtures import ROOT, DbusMenu, Notes, gui_env
from tray.desktop.app import TrayApp, signed_in
from tray.desktop.instance import Instance
from tray.desktop.menu import MenuItem, build_menu
from tray.models import Account, AccountState, Identity, TokenSet
from tray.notices import DesktopNotifier
from tray.notices.macos import NotificationCenter
from tray.paths import Paths, resolve_paths


def headless_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def instance_url(paths: Paths) -> str | None:
    try:
        return str(json.loads(paths.instance_file.read_text())["url"])
    except (OSError, ValueError, KeyError):
        return None


def test_without_a_display_it_says_so_and_serves_headless(pool_home: Path) -> None:
    paths = prepare_pool()
    proc = subprocess.Popen([sys.executable, "-m", "tray"], cwd=ROOT, env=headless_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("codex-pool: no tray (no display); running the proxy headless"), first
        wait_for(lambda: instance_url(paths) is not None, what="the proxy")
        url = instance_url(paths)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200

        second = subprocess.run([sys.executable, "-m", "tray"], cwd=ROOT, env=headless_env(), text=True,
                                capture_output=True, timeout=30, check=False)
        assert second.returncode == 0, second.stderr
        assert "already running headless" in second.stdout
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err
    assert not paths.instance_file.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


@pytest.mark.gui
def test_second_start_opens_the_first_ones_window_and_exits(tray_host: str, session_bus: str,
                                                            notifications: Notes) -> None:
    paths = prepare_pool()
    first = start_tray(tray_host, session_bus)
    try:
        menu = DbusMenu(session_bus, first.pid)
        menu.layout(until=lambda m: "Quit" in m.labels)
        second = subprocess.run([sys.executable, "-m", "tray"], cwd=ROOT, env=gui_env(tray_host, session_bus),
                                text=True, capture_output=True, timeout=30, check=False)
        assert second.returncode == 0, second.stderr
        assert "already running; its window is shown now" in second.stdout

        def window_up() -> bool:
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^codex-pool$"],
                                   env={"DISPLAY": tray_host}, capture_output=True, text=True, check=False)
            return bool(found.stdout.split())

        wait_for(window_up, what="the pool window")
        menu.click("Quit")  # closes the window with the tray
        assert first.wait(30) == 0
        wait_for(lambda: not window_up(), what="the window to close")
    finally:
        _code, err = stop(first)
    assert "Traceback" not in err, err
    assert not paths.instance_file.exists()


@pytest.mark.gui
def test_sigterm_stops_the_tray_cleanly(tray_host: str, session_bus: str, notifications: Notes) -> None:
    paths = prepare_pool()
    proc = start_tray(tray_host, session_bus)
    try:
        wait_for(lambda: instance_url(paths) is not None, what="the proxy")
        DbusMenu(session_bus, proc.pid).layout(until=lambda m: "Quit" in m.labels)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        _, err = stop(proc)
    assert "Traceback" not in err, err
    assert not paths.instance_file.exists()


@pytest.mark.gui
def test_a_proxy_that_cannot_start_shows_stopped_and_says_why(tray_host: str, session_bus: str,
                                                              notifications: Notes, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        prepare_pool(port=port)
        proc = start_tray(tray_host, session_bus)
        try:
            menu = DbusMenu(session_bus, proc.pid)
            said = f"Proxy cannot start: port {port} is in use"  # not "Proxy stopped" forever
            layout = menu.layout(until=lambda m: any(label.startswith(said) for label in m.labels))
            assert "Quit" in layout.labels and "Open config file" in layout.labels
            note = notifications.wait(where=lambda n: "did not start" in n["summary"])
            assert len(note) == 1 and str(port) in note[0]["body"]
            assert f"held by another program (pid {os.getpid()}: " in note[0]["body"]  # who holds it
            r, g, b = tray_shot(tray_host, tmp_path / "stopped.png", "grey")
            assert abs(r - b) < 40 and abs(r - g) < 40  # the grey "stopped" icon
            menu.click("Quit")
            assert proc.wait(30) == 0
        finally:
            _, err = stop(proc)
    assert "Traceback" not in err, err


@pytest.mark.gui
def test_quit_lets_a_stream_in_flight_finish(tray_host: str, session_bus: str, notifications: Notes) -> None:
    from tests.fakes.runner import serving
    from tests.fakes.upstream import make_chatgpt, replies
    from tests.support.proxykit import CODEX_HEADERS, add_account, codex_body
    from tray.paths import api_key
    from tray.store.accounts import Store

    chatgpt = make_chatgpt()
    with serving(chatgpt.app) as fake:
        paths = prepare_pool(**{"upstream-url": f"{fake.url}/backend-api", "auth-url": fake.url})
        store = Store.open(paths.db_file)
        add_account(store, chatgpt.auth, chatgpt.upstream, "a")  # type: ignore[arg-type]
        store.close()
        chatgpt.upstream.script("a", replies.ok("slow and steady", deltas=8, event_delay=0.25))
        proc = start_tray(tray_host, session_bus)
        try:
            menu = DbusMenu(session_bus, proc.pid)
            menu.layout(until=lambda m: "Quit" in m.labels)
            url = instance_url(paths)
            headers = {**CODEX_HEADERS, "Authorization": f"Bearer {api_key(paths)}"}
            seen: list[str] = []
            with httpx.Client(timeout=30, trust_env=False) as client, client.stream(
                "POST", f"{url}/backend-api/codex/responses", json=codex_body(), headers=headers
            ) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    seen.append(line)
                    if "output_text.delta" in line and not any("Quit" in s for s in seen):
                        menu.click("Quit")  # mid-answer
                        seen.append("Quit")
            assert proc.wait(30) == 0
        finally:
            _, err = stop(proc)
    assert "Traceback" not in err, err
    text = "\n".join(seen)
    assert "Quit" in seen and "response.completed" in text  # the answer finished after Quit
    assert seen.index("Quit") < next(i for i, s in enumerate(seen) if "response.completed" in s)


@pytest.mark.gui
def test_add_account_in_the_browser_from_the_menu(tray_host: str, session_bus: str, notifications: Notes,
                                                  tmp_path: Path) -> None:
    from tests.fakes.auth_server import FakeUser
    from tests.fakes.runner import serving
    from tests.fakes.upstream import make_chatgpt

    chatgpt = make_chatgpt()
    chatgpt.auth.user = FakeUser(account_id="acc-new", subject="user-new", email="new@x.com", plan="pro")
    chatgpt.upstream.add_account("acc-new", "not-issued-yet", plan_type="pro")  # its usage says "pro" too
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"  # the "default browser": writes down the URL it was given
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    with serving(chatgpt.app) as fake:
        prepare_pool(**{"upstream-url": f"{fake.url}/backend-api", "auth-url": fake.url})
        proc = start_tray(tray_host, session_bus, BROWSER=str(browser))
        try:
            menu = DbusMenu(session_bus, proc.pid)
            menu.layout(until=lambda m: "No accounts yet: add one below" in m.labels)
            menu.click("Add account (browser)")
            wait_for(lambda: opened.exists() and opened.read_text().strip() != "", what="the browser")
            authorize = opened.read_text().splitlines()[0]
            assert authorize.startswith(f"{fake.url}/oauth/authorize?")
            # The user signs in: the fake auth server sends the browser back to the tray's callback.
            page = httpx.get(authorize, follow_redirects=True, timeout=20, trust_env=False)
            assert page.status_code == 200
            new_line = "new@x.com · pro · primary"
            layout = menu.layout(until=lambda m: any(x.startswith(new_line) for x in m.labels))
            assert "No accounts yet: add one below" not in layout.labels
            added = notifications.wait(where=lambda n: "account added" in n["summary"])
            assert len(added) == 1 and "new@x.com" in added[0]["body"]
            menu.click("Quit")
            assert proc.wait(30) == 0
        finally:
            _, err = stop(proc)
    assert "Traceback" not in err, err


def test_notifications_macos_refused_are_named_in_the_menu(pool_home: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The app bundle's Notification Center (a recording stand-in: the user answered "Don't
    Allow"): the refusal reaches the tray's menu through the snapshot, and goes once allowed."""
    paths = resolve_paths()
    library = Library(allowed=False)
    notifier = DesktopNotifier(NotificationCenter(library))
    app = TrayApp(paths, Instance(paths), notifier=notifier)
    try:
        notifier.send("codex-pool: every account is out of quota", "Requests get a 429 until 14:05.")
        notifier.flush()
        said = "Notifications are off: allow codex-pool in System Settings › Notifications"
        assert build_menu(app.snapshot()).find("Notifications") == MenuItem(said, enabled=False)
        library.allowed = True
        notifier.send("codex-pool: quota available again", "Requests are served again.")
        notifier.flush()
        assert build_menu(app.snapshot()).find("Notifications") is None
        assert [t for t, _ in library.shown] == ["codex-pool: quota available again"]
    finally:
        notifier.close()
        app.engine.store.close()


def test_a_tray_sign_in_names_an_account_that_was_in_the_pool_signed_in_again() -> None:
    def account(created_at: float) -> Account:
        return Account(id=1, identity=Identity("acc-1", "user-1"), email="work@x.com", label=None,
                       plan="plus", priority=0, primary=False, state=AccountState.ENABLED, state_reason=None,
                       tokens=TokenSet("at", "rt", None, 2e9), state_at=created_at, created_at=created_at,
                       updated_at=created_at)

    again = signed_in(account(created_at=1000.0), started=2000.0)
    assert again.title == "codex-pool: signed in again as work@x.com" and "added" not in again.body
    added = signed_in(account(created_at=2001.0), started=2000.0)
    assert added.title == "codex-pool: account added" and added.body == "work@x.com is in the pool now."
