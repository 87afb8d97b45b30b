"""What the tray says and does, under Xvfb with a tray host and notifications on the private bus:
an exhausted pool says until when, accounts at their limit say when they reset, a signed-out
account offers Re-login first; a notification's buttons work where the desktop has them; a config
problem's line opens the config file, or says what to do when nothing opens it; "Add account
(device code)…" starts the device flow at once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.desktop.test_tray import icon_centre, prepare_pool, start_tray, stop, tray_shot, wait_for
from tests.fakes.seed import add_account, put_usage, record
from tests.support.gui_fixtures import DbusMenu, Notes, screenshot
from tray.models import AccountState
from tray.store.accounts import Store

pytestmark = pytest.mark.gui

SHOTS = os.environ.get("CODEX_POOL_SCREENSHOTS")  # set: the menu's picture is kept there too


def hhmm(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M")


def window_up(display: str) -> bool:
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^codex-pool$"],
                           env={"DISPLAY": display}, capture_output=True, text=True, check=False)
    return bool(found.stdout.split())


def open_menu(display: str, tmp_path: Path, hover_y: int | None = None) -> Path:
    """Click the tray icon (and point at the row at ``hover_y`` to open its submenu); a picture of
    the menu."""
    x, y = icon_centre(display, tmp_path / "icon.png")
    subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", "1"], env={"DISPLAY": display},
                   check=True, timeout=10)
    time.sleep(1.0)
    if hover_y is not None:
        subprocess.run(["xdotool", "mousemove", str(1280 - 400), str(hover_y)], env={"DISPLAY": display},
                       check=True, timeout=10)
        time.sleep(1.0)
    return screenshot(display, tmp_path / "menu.png", (0, 0, 1280, 330))


def test_an_exhausted_pool_says_until_when_and_each_account_when_it_resets(
        tray_host: str, session_bus: str, notifications: Notes, tmp_path: Path) -> None:
    paths = prepare_pool()
    store = Store.open(paths.db_file)
    try:
        work = add_account(store, "work@x.com", plan="plus", primary=True)
        team = add_account(store, "team-seat-with-a-long-address@example.com", plan="team")
        gone = add_account(store, "old@x.com", plan="plus")
        put_usage(store, work, 100, 40, short_reset_s=23 * 60 + 20, allowed=False, limit_reached=True)
        put_usage(store, team, 100, 70, short_reset_s=80 * 60, allowed=False, limit_reached=True)
        put_usage(store, gone, 10, 5)
        store.set_state(gone.id, AccountState.NEEDS_LOGIN, "refresh_token_reused")
        record(store, team, [work])  # team served the last request
        back = time.time() + 23 * 60 + 20
    finally:
        store.close()
    proc = start_tray(tray_host, session_bus)
    menu = DbusMenu(session_bus, proc.pid)
    try:
        layout = menu.layout(until=lambda m: m.labels[0].startswith("Pool exhausted"))
        labels = layout.labels
        # The reset as a clock time: the minute it falls in, or the next one when the seconds between
        # seeding and reading carry it over.
        at = f"({hhmm(back)}|{hhmm(back + 60)})"
        assert re.fullmatch(rf"Pool exhausted until {at} \(in 2[345] min\)", labels[0]), labels[0]
        work_line = next(x for x in labels if x.startswith("work@x.com"))
        assert re.fullmatch(rf"work@x\.com · plus · primary · usage limit reached, resets {at} · "
                            r"weekly 40 % used \(resets in \d d( \d+ h)?\)",
                            work_line), work_line
        team_line = next(x for x in labels if x.startswith("team-seat"))
        assert "usage limit reached, resets" in team_line and team_line.endswith(" · served last")
        # Not "rate limited (HTTP 429)" (a bare "429" would also match a proxy port like 54291).
        assert not any("HTTP 429" in x or "rate limited" in x for x in labels), labels
        old = layout.find("old@x.com")
        assert old is not None and "needs login" in old.label
        assert old.labels == ["Re-login…", "Move up", "Move down", "Remove…"]  # Re-login first
        tray_shot(tray_host, tmp_path / "exhausted.png", "red")
        shot = open_menu(tray_host, tmp_path, hover_y=148)  # the signed-out account's submenu
        if SHOTS:
            shutil.copy(shot, Path(SHOTS) / "tray-menu-exhausted.png")  # assets/screenshots/
        subprocess.run(["xdotool", "key", "Escape"], env={"DISPLAY": tray_host}, check=True, timeout=10)
    finally:
        _code, err = stop(proc)
        assert "Traceback" not in err, err


def test_a_notification_button_opens_the_window_where_the_desktop_has_buttons(
        tray_host: str, session_bus: str, notifications_with_actions: Notes) -> None:
    paths = prepare_pool()
    store = Store.open(paths.db_file)
    try:
        work = add_account(store, "work@x.com")
        spare = add_account(store, "spare@x.com")
        put_usage(store, work, 10, 5)
        put_usage(store, spare, 10, 5)
    finally:
        store.close()
    proc = start_tray(tray_host, session_bus)
    menu = DbusMenu(session_bus, proc.pid)
    try:
        menu.layout(until=lambda m: m.labels[0] == "All good")
        store = Store.open(paths.db_file)
        try:
            store.set_state(spare.id, AccountState.NEEDS_LOGIN, "refresh_token_reused")
        finally:
            store.close()
        said = notifications_with_actions.wait(where=lambda n: "needs a new login" in n["summary"])
        assert len(said) == 1
        note = said[0]
        assert note["actions"] == [[f"relogin:{spare.id}", "Re-login"], ["window", "Open pool window"]]
        assert note["body"] == "It is left out of routing until you sign in again."  # buttons say the rest
        assert f"{note['summary']} {note['body']}".count("spare@x.com") == 1
        assert not window_up(tray_host)
        notifications_with_actions.click(note["id"], f"relogin:{spare.id}")
        wait_for(lambda: window_up(tray_host), timeout=40, what="the pool window, on the re-login page")
        menu.click("Quit")
        assert proc.wait(30) == 0
    finally:
        _code, err = stop(proc)
        assert "Traceback" not in err, err


def fake_opener(folder: Path, code: int) -> Path:
    """An ``xdg-open`` that writes down what it was asked to open and ends with ``code`` (3: no
    application for that type of file)."""
    folder.mkdir(parents=True, exist_ok=True)
    asked = folder / "asked.txt"
    script = folder / "xdg-open"
    script.write_text(f'#!/bin/sh\necho "$1" >> {asked}\nexit {code}\n')
    script.chmod(0o755)
    return asked


def zombies(pid: int) -> list[int]:
    """The process's children that ended without being waited for."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            stat = Path(f"/proc/{child}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                found.append(int(child))
    return found


def test_a_config_problem_line_opens_the_file_or_says_what_to_do(
        tray_host: str, session_bus: str, notifications: Notes, tmp_path: Path) -> None:
    paths = prepare_pool()
    paths.config_file.write_text(paths.config_file.read_text() + 'fast-mode = "sometimes"\n')
    store = Store.open(paths.db_file)
    try:
        put_usage(store, add_account(store, "work@x.com"), 10, 5)
    finally:
        store.close()
    asked = fake_opener(tmp_path / "bin", 3)
    proc = start_tray(tray_host, session_bus, PATH=str(tmp_path / "bin"))  # its only opener
    menu = DbusMenu(session_bus, proc.pid)
    try:
        layout = menu.layout(until=lambda m: m.labels[0].startswith("Config problem"))
        assert layout.labels[0] == "Config problem (click to open the config file)"
        menu.click("Config problem")
        said = notifications.wait(where=lambda n: "did not open" in n["summary"])
        assert len(said) == 1
        assert said[0]["body"].endswith(f"Open {paths.config_file} in a text editor (it is plain TOML).")
        assert asked.read_text().strip() == str(paths.config_file)
        wait_for(lambda: not zombies(proc.pid), what="the opener to be reaped")
        shutil.rmtree(tmp_path / "bin")  # no opener at all: it says so, with the same advice
        menu.click("Open config file")
        none = notifications.wait(where=lambda n: "no 'xdg-open' here" in n["body"])
        assert len(none) == 1 and str(paths.config_file) in none[0]["body"]
    finally:
        _code, err = stop(proc)
        assert "Traceback" not in err, err


def test_add_account_with_a_device_code_starts_the_flow_at_once(
        tray_host: str, session_bus: str, notifications: Notes, tmp_path: Path) -> None:
    from tests.fakes.auth_server import FakeAuth, FakeUser
    from tests.fakes.runner import serving
    from tests.fakes.upstream import make_chatgpt

    chatgpt = make_chatgpt()
    auth = chatgpt.auth
    assert isinstance(auth, FakeAuth)
    auth.user = FakeUser(account_id="acc-dev", subject="user-dev", email="dev@x.com", plan="plus")
    with serving(chatgpt.app) as fake:
        prepare_pool(**{"upstream-url": f"{fake.url}/backend-api", "auth-url": fake.url})
        proc = start_tray(tray_host, session_bus)
        menu = DbusMenu(session_bus, proc.pid)
        try:
            menu.layout(until=lambda m: m.labels[0] == "No accounts")
            menu.click("Add account (device code)")
            wait_for(lambda: bool(auth.devices), timeout=40, what="the device flow to start")
            wait_for(lambda: window_up(tray_host), what="the pool window")
            time.sleep(1.5)  # the page draws the code
            screenshot(tray_host, tmp_path / "device.png")
            if SHOTS:
                shutil.copy(tmp_path / "device.png", Path(SHOTS) / "screenshot-tray-device.png")
            (device,) = auth.devices.values()
            auth.approve(device.user_code)  # the user enters the code on their phone
            layout = menu.layout(until=lambda m: any(x.startswith("dev@x.com") for x in m.labels),
                                 timeout=40)
            assert layout.labels[0] != "No accounts"
            menu.click("Quit")
            assert proc.wait(30) == 0
        finally:
            _code, err = stop(proc)
            assert "Traceback" not in err, err
