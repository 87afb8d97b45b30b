"""The start-at-login entry texts: pure, so every OS's text is checked on every OS."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tray.autostart import texts


def test_desktop_entry_starts_the_command_and_validates(tmp_path: Path) -> None:
    text = texts.desktop_entry(["/opt/codex pool/bin/codex-pool"])
    assert 'Exec="/opt/codex pool/bin/codex-pool"' in text
    assert "Type=Application" in text and "Name=codex-pool" in text
    assert "Hidden=true" not in text
    if shutil.which("desktop-file-validate") is None:
        pytest.skip("desktop-file-validate not installed")
    path = tmp_path / "codex-pool.desktop"
    path.write_text(text)
    result = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""  # not even a hint


def test_exec_quotes_special_characters_so_a_launcher_reads_them_back() -> None:
    command = ["/home/a b/py", "-m", "tray", 'say "hi"', "100%", "$HOME", "back\\slash"]
    assert parse_exec(texts.exec_line(command)) == command


def parse_exec(value: str) -> list[str]:
    """Read an Exec value back the way the Desktop Entry spec says a launcher does."""
    value = value.replace("\\\\", "\\").replace("%%", "%")  # the string-type escapes first
    args: list[str] = []
    current: str | None = None
    quoted = escaped = False
    for ch in value:
        if quoted:
            if escaped:
                current = (current or "") + ch
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            else:
                current = (current or "") + ch
        elif ch == " ":
            if current is not None:
                args.append(current)
            current = None
        elif ch == '"':
            quoted = True
            current = current or ""
        else:
            current = (current or "") + ch
    if current is not None:
        args.append(current)
    return args


def test_hidden_entry_or_gnome_disabled_reads_as_off() -> None:
    command = ["/usr/bin/codex-pool"]
    assert texts.desktop_entry_enabled(texts.desktop_entry(command))
    assert not texts.desktop_entry_enabled(texts.desktop_entry(command, hidden=True))
    assert not texts.desktop_entry_enabled(
        "[Desktop Entry]\nType=Application\nX-GNOME-Autostart-enabled=false\n"
    )
    # Keys in another group do not count.
    assert texts.desktop_entry_enabled("[Desktop Entry]\nType=Application\n[Desktop Action x]\nHidden=true\n")


def test_launch_agent_plist_runs_at_login_in_gui_sessions_only() -> None:
    data = texts.launch_agent(["/Applications/codex-pool.app/Contents/MacOS/codex-pool"])
    agent = plistlib.loads(data)
    assert agent == {
        "Label": "io.github.codex-pool",
        "ProgramArguments": ["/Applications/codex-pool.app/Contents/MacOS/codex-pool"],
        "RunAtLoad": True,
        "LimitLoadToSessionType": "Aqua",
        "ProcessType": "Interactive",
    }
    assert texts.launch_agent_enabled(data)
    agent["Disabled"] = True
    assert not texts.launch_agent_enabled(plistlib.dumps(agent))
    assert not texts.launch_agent_enabled(b"not a plist")


def test_windows_run_value_quotes_the_executable() -> None:
    value = texts.windows_run_value([r"C:\Program Files\Python311\pythonw.exe", "-m", "tray"])
    assert value == r'"C:\Program Files\Python311\pythonw.exe" -m tray'
    assert texts.windows_run_value([r"C:\cp\codex-pool.exe"]) == r'"C:\cp\codex-pool.exe"'
    assert len(value) <= 260


@pytest.mark.parametrize(
    ("blob", "disabled"),
    [
        (None, False),
        (b"", False),
        (bytes([2]) + bytes(11), False),
        (bytes([6]) + bytes(11), False),
        (bytes([3]) + bytes(11), True),
        (bytes([7]) + bytes(11), True),
    ],
)
def test_startup_approved_first_byte(blob: bytes | None, disabled: bool) -> None:
    assert texts.startup_approved_disabled(blob) is disabled


def _exists(*paths: str) -> Callable[[str], bool]:
    return lambda p: p in paths


def test_launch_command_prefers_frozen_then_script_beside_python_then_path() -> None:
    def none(_: str) -> str | None:
        return None

    assert texts.launch_command(
        executable="/app/codex-pool", platform="linux", frozen=True, script_exists=_exists(), which=none
    ) == ["/app/codex-pool"]
    assert texts.launch_command(
        executable="/v/bin/python",
        platform="linux",
        frozen=False,
        script_exists=_exists("/v/bin/codex-pool"),
        which=none,
    ) == ["/v/bin/codex-pool"]
    assert texts.launch_command(
        executable="/usr/bin/python3",
        platform="darwin",
        frozen=False,
        script_exists=_exists(),
        which=lambda _: "/home/u/.local/bin/codex-pool",
    ) == ["/home/u/.local/bin/codex-pool"]
    assert texts.launch_command(
        executable="/usr/bin/python3", platform="linux", frozen=False, script_exists=_exists(), which=none
    ) == ["/usr/bin/python3", "-m", "tray"]


def test_launch_command_on_windows_uses_pythonw_so_no_console_opens() -> None:
    def none(_: str) -> str | None:
        return None

    assert texts.launch_command(
        executable=r"C:\v\Scripts\python.exe",
        platform="win32",
        frozen=False,
        script_exists=_exists(r"C:\v\Scripts\pythonw.exe", r"C:\v\Scripts\codex-pool.exe"),
        which=none,
    ) == [r"C:\v\Scripts\pythonw.exe", "-m", "tray"]
    assert texts.launch_command(
        executable=r"C:\v\Scripts\python.exe",
        platform="win32",
        frozen=False,
        script_exists=_exists(r"C:\v\Scripts\codex-pool.exe"),
        which=none,
    ) == [r"C:\v\Scripts\codex-pool.exe"]


def test_the_entry_opens_the_same_pool_as_the_command_that_turned_it_on() -> None:
    """CODEX_POOL_HOME / CODEX_HOME set now reach the tray started at login (Linux: env in Exec;
    macOS: EnvironmentVariables); other variables do not."""
    pool = texts.pool_environment({"CODEX_POOL_HOME": "/srv/my pool", "CODEX_HOME": "/h/.codex-work",
                                   "PATH": "/usr/bin", "CODEX_POOL_API_KEY": "cp-secret"})
    assert pool == {"CODEX_POOL_HOME": "/srv/my pool", "CODEX_HOME": "/h/.codex-work"}
    entry = texts.desktop_entry(["/usr/bin/codex-pool"], environment=pool)
    exec_value = next(line for line in entry.splitlines() if line.startswith("Exec="))[5:]
    assert parse_exec(exec_value) == ["env", "CODEX_POOL_HOME=/srv/my pool", "CODEX_HOME=/h/.codex-work",
                                      "/usr/bin/codex-pool"]
    assert "TryExec=/usr/bin/codex-pool" in entry
    agent = plistlib.loads(texts.launch_agent(["/Applications/codex-pool.app/Contents/MacOS/codex-pool"],
                                              environment=pool))
    assert agent["EnvironmentVariables"] == pool
    assert "EnvironmentVariables" not in plistlib.loads(texts.launch_agent(["/x"]))


def test_windows_prefers_the_windowed_program_so_no_console_opens_at_login() -> None:
    exists = {r"C:\codex-pool\codex-pool.exe", r"C:\codex-pool\codex-pool-tray.exe",
              r"C:\Py\python.exe", r"C:\Py\pythonw.exe", r"C:\Py\Scripts\codex-pool.exe",
              r"C:\Py\Scripts\codex-pool-tray.exe"}

    def command(executable: str, frozen: bool, present: set[str]) -> list[str]:
        return texts.launch_command(executable=executable, platform="win32", frozen=frozen,
                                    script_exists=present.__contains__, which=lambda _name: None)

    # The bundle's console codex-pool.exe turned it on: the entry starts its windowed twin.
    tray = r"C:\codex-pool\codex-pool-tray.exe"
    assert command(r"C:\codex-pool\codex-pool.exe", True, exists) == [tray]
    assert command(tray, True, exists) == [tray]
    # pip install: the gui-script, then pythonw -m tray.
    assert command(r"C:\Py\python.exe", False, exists) == [r"C:\Py\Scripts\codex-pool-tray.exe"]
    assert command(r"C:\Py\python.exe", False, exists - {r"C:\Py\Scripts\codex-pool-tray.exe"}) == [
        r"C:\Py\pythonw.exe", "-m", "tray"]


def test_entries_for_a_program_in_a_temporary_place_are_refused() -> None:
    translocated = ("/private/var/folders/x1/T/AppTranslocation/4F2A/d/codex-pool.app/Contents/MacOS/"
                    "codex-pool")
    said = texts.unsafe_location(translocated, ["/private/var/folders/x1/T"])
    assert said is not None and "App Translocation" in said and "Applications" in said
    unzipped = r"C:\Users\ann\AppData\Local\Temp\Temp1_codex-pool.zip\codex-pool\codex-pool-tray.exe"
    said = texts.unsafe_location(unzipped, [r"C:\Users\ann\AppData\Local\Temp"])
    assert said is not None and "temporary folder" in said
    assert texts.unsafe_location(r"C:\Program Files\codex-pool\codex-pool-tray.exe",
                                 [r"C:\Users\ann\AppData\Local\Temp"]) is None
    assert texts.unsafe_location("/Applications/codex-pool.app/Contents/MacOS/codex-pool", ["/tmp"]) is None
