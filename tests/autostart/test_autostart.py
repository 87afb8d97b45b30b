"""Start at login, applied for real on Linux; macOS and Windows logic run here through injected
file locations and an in-memory registry."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.autostart.test_texts import parse_exec
from tray import __version__, autostart
from tray.autostart import _windows, texts
from tray.autostart._macos import MacAutostart
from tray.cli import main
from tray.errors import AutostartError


def test_linux_on_off_status_through_the_cli(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry_file = isolated_home / ".config" / "autostart" / "codex-pool.desktop"
    assert main(["autostart", "status"]) == 0
    assert capsys.readouterr().out == "off\n"

    assert main(["autostart", "on"]) == 0
    assert entry_file.is_file()
    capsys.readouterr()
    assert main(["autostart", "status"]) == 0
    assert capsys.readouterr().out == "on\n"

    assert main(["autostart", "off"]) == 0
    assert not entry_file.exists()
    capsys.readouterr()
    assert main(["autostart", "status"]) == 0
    assert capsys.readouterr().out == "off\n"


def test_linux_entry_hidden_by_the_desktop_reads_off(isolated_home: Path) -> None:
    entry = autostart.backend(platform="linux")
    entry.enable()
    path = Path(entry.location)
    path.write_text(path.read_text() + "Hidden=true\n")
    assert autostart.status().enabled is False
    entry.enable()  # turning it on again rewrites a visible entry
    assert autostart.enabled()


@pytest.mark.skipif(sys.platform != "linux", reason="runs the installed Linux entry")
def test_linux_entry_validates_and_its_exec_starts_the_installed_codex_pool(isolated_home: Path) -> None:
    autostart.enable()
    path = Path(autostart.status().location)
    result = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    exec_value = next(line[5:] for line in path.read_text().splitlines() if line.startswith("Exec="))
    argv = parse_exec(exec_value)
    run = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"codex-pool {__version__}"


def test_unwritable_autostart_folder_is_a_clear_error(isolated_home: Path) -> None:
    config = isolated_home / ".config"
    config.mkdir(parents=True)
    (config / "autostart").write_text("a file where the folder should be")
    with pytest.raises(AutostartError, match="Could not write"):
        autostart.enable()
    assert main(["autostart", "on"]) == 1


class RecordingLaunchctl:
    """launchctl as it answers ``print-disabled``; every call is recorded."""

    def __init__(self, disabled: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.disabled = disabled

    def __call__(self, args: Sequence[str]) -> str:
        self.calls.append(list(args))
        if list(args[:1]) == ["print-disabled"]:
            state = "disabled" if self.disabled else "enabled"
            return ('disabled services = {\n\t"com.apple.ScreenReaderUIServer" => disabled\n'
                    f'\t"io.github.codex-pool" => {state}\n}}\n')
        return ""


def test_macos_launch_agent_written_and_removed_without_stopping_the_running_tray(tmp_path: Path) -> None:
    launchctl = RecordingLaunchctl()
    agent = MacAutostart(tmp_path / "LaunchAgents", ["/Apps/codex-pool"], launchctl=launchctl, uid=501)
    assert not agent.enabled()
    agent.enable()
    plist = tmp_path / "LaunchAgents" / "io.github.codex-pool.plist"
    assert plistlib.loads(plist.read_bytes())["ProgramArguments"] == ["/Apps/codex-pool"]
    assert agent.enabled()
    agent.disable()
    assert not plist.exists() and not agent.enabled()
    # Only reads: no bootstrap (a second copy at once) and no bootout (it kills the tray launchd started).
    assert {call[0] for call in launchctl.calls} == {"print-disabled"}


def test_macos_login_items_switch_off_reads_as_off(tmp_path: Path) -> None:
    """System Settings > Login Items > "Allow in the Background" turned off: launchd keeps the agent
    disabled although the plist is there."""
    launchctl = RecordingLaunchctl(disabled=True)
    agent = MacAutostart(tmp_path / "LaunchAgents", ["/Apps/codex-pool"], launchctl=launchctl, uid=501)
    agent.enable()
    assert not agent.enabled()
    assert launchctl.calls == [["print-disabled", "gui/501"]]
    assert texts.launchd_disabled('"io.github.codex-pool" => true', "io.github.codex-pool")  # older macOS
    assert not texts.launchd_disabled('"io.github.codex-pool.other" => disabled', "io.github.codex-pool")


def test_macos_backend_from_the_dispatcher_uses_home(tmp_path: Path) -> None:
    entry = autostart.backend(platform="darwin", environ={"HOME": str(tmp_path)}, command=["/x"])
    assert entry.location == str(tmp_path / "Library" / "LaunchAgents" / "io.github.codex-pool.plist")


class MemoryRegistry:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str | bytes] = {}

    def read(self, key: str, name: str) -> str | bytes | None:
        return self.values.get((key, name))

    def write_string(self, key: str, name: str, value: str) -> None:
        self.values[(key, name)] = value

    def delete(self, key: str, name: str) -> None:
        self.values.pop((key, name), None)


def test_windows_run_value_and_task_manager_disable() -> None:
    registry = MemoryRegistry()
    command = [r"C:\Python311\pythonw.exe", "-m", "tray"]
    entry = autostart.backend(platform="win32", registry=registry, command=command)
    assert not entry.enabled()
    entry.enable()
    assert registry.values[(_windows.RUN_KEY, "codex-pool")] == r'"C:\Python311\pythonw.exe" -m tray'
    assert entry.enabled()

    # The user turns it off in Task Manager: the Run value stays, StartupApproved says 03.
    registry.values[(_windows.APPROVED_KEY, "codex-pool")] = bytes([3]) + bytes(11)
    assert not entry.enabled()
    entry.enable()  # an explicit "on" from codex-pool clears Task Manager's "off"
    assert entry.enabled()

    entry.disable()
    assert registry.values == {}
    assert not entry.enabled()


def test_windows_registry_errors_become_autostart_errors() -> None:
    class Broken(MemoryRegistry):
        def write_string(self, key: str, name: str, value: str) -> None:
            raise PermissionError(13, "Access is denied")

    entry = autostart.backend(platform="win32", registry=Broken(), command=["C:\\cp.exe"])
    with pytest.raises(AutostartError, match="Could not write the registry: Access is denied"):
        entry.enable()


def test_current_command_is_this_installs_codex_pool() -> None:
    command = autostart.current_command()
    assert command[0] == os.path.join(os.path.dirname(sys.executable), "codex-pool") or command[-2:] == [
        "-m",
        "tray",
    ]
    assert texts.exec_line(command)


def test_macos_refuses_to_turn_on_for_a_translocated_app_but_still_turns_off(tmp_path: Path) -> None:
    app = "/private/var/folders/x1/T/AppTranslocation/4F2A/d/codex-pool.app/Contents/MacOS/codex-pool"
    environ = {"HOME": str(tmp_path), "TMPDIR": "/private/var/folders/x1/T"}
    entry = autostart.backend(platform="darwin", environ=environ, command=[app])
    with pytest.raises(AutostartError, match="App Translocation"):
        entry.enable()
    assert not entry.enabled()
    entry.disable()


def test_windows_says_when_the_pool_variables_cannot_reach_the_entry() -> None:
    registry = MemoryRegistry()
    environ = {"CODEX_POOL_HOME": r"D:\pool"}
    entry = autostart.backend(platform="win32", registry=registry, environ=environ,
                              command=[r"C:\Program Files\codex-pool\codex-pool-tray.exe"])
    entry.enable()
    assert entry.enabled()
    assert autostart.notes("win32", environ) == [
        'CODEX_POOL_HOME is set here; the tray started at login sees it only when it is set for your user '
        'too (setx CODEX_POOL_HOME "D:\\pool").']
    assert autostart.notes("linux", environ) == [] and autostart.notes("win32", {}) == []
