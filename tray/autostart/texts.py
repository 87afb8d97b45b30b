"""The start-at-login entries as text: pure functions, tested on every OS.

Each builder takes the command that starts codex-pool (an argv list) and returns exactly what is
written: the Linux XDG autostart ``.desktop`` file, the macOS LaunchAgent plist, the Windows ``Run``
value. :func:`launch_command` works out that command from facts the caller gathers (interpreter,
platform, frozen or not, where the console script is), so it is pure too.
"""

from __future__ import annotations

import plistlib
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath, PurePosixPath, PureWindowsPath

APP_NAME = "codex-pool"
DESKTOP_FILE_NAME = "codex-pool.desktop"
LAUNCH_AGENT_LABEL = "io.github.codex-pool"
WINDOWS_VALUE_NAME = "codex-pool"
TRAY_EXE = "codex-pool-tray.exe"  # Windows: the windowed build (bundle) or gui-script (pip): no console
# Which pool the tray at login opens: these reach the entry when they are set now.
POOL_VARIABLES = ("CODEX_POOL_HOME", "CODEX_HOME")

# Characters that force quoting in a Desktop Entry Exec argument (Desktop Entry spec, "The Exec key").
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
# Inside double quotes these four must be backslash-escaped.
_EXEC_QUOTED_ESCAPES = set('"`$\\')


def launch_command(
    *,
    executable: str,
    platform: str,
    frozen: bool,
    script_exists: Callable[[str], bool],
    which: Callable[[str], str | None],
) -> list[str]:
    """The argv that starts the installed codex-pool tray app.

    ``executable`` is ``sys.executable``. A frozen (PyInstaller) build is its own executable. On
    Windows a console program would open a console window at every login, so the windowed
    ``codex-pool-tray.exe`` is preferred (beside a frozen build, or the pip install's gui-script),
    then ``pythonw.exe -m tray`` when that interpreter sits next to python.exe. Elsewhere the
    ``codex-pool`` console script beside the interpreter (a venv, pipx or uv tool install) is
    preferred, then one on PATH, then ``<python> -m tray``.
    """
    windows = platform == "win32"
    path_type: type[PurePath] = PureWindowsPath if windows else PurePosixPath
    exe = path_type(executable)
    if frozen:
        tray = str(exe.with_name(TRAY_EXE))
        return [tray] if windows and exe.name.lower() != TRAY_EXE and script_exists(tray) else [executable]
    if windows:
        for gui in (str(exe.parent / TRAY_EXE), str(exe.parent / "Scripts" / TRAY_EXE)):
            if script_exists(gui):
                return [gui]
        pythonw = exe.with_name("pythonw.exe")
        if exe.name.lower() == "python.exe" and script_exists(str(pythonw)):
            return [str(pythonw), "-m", "tray"]
        script = exe.with_name("Scripts") / "codex-pool.exe"
        for candidate in (str(exe.parent / "codex-pool.exe"), str(script)):
            if script_exists(candidate):
                return [candidate]
    else:
        beside = str(exe.parent / APP_NAME)
        if script_exists(beside):
            return [beside]
    found = which(APP_NAME)
    if found:
        return [found]
    return [executable, "-m", "tray"]


def pool_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that choose the pool (:data:`POOL_VARIABLES`), as set now, for the entry."""
    return {name: environ[name] for name in POOL_VARIABLES if environ.get(name)}


def unsafe_location(executable: str, temp_dirs: Sequence[str]) -> str | None:
    """Why an entry must not start ``executable``: a macOS App Translocation copy (an app run
    straight from Downloads or a disk image gets a random read-only path that is gone after a
    restart) or a temporary folder. ``None`` when it may."""
    path = executable.replace("\\", "/")
    if "/AppTranslocation/" in path:
        return ("codex-pool runs from a temporary copy macOS made (App Translocation): move "
                "codex-pool.app to Applications, open it from there, then turn Start at login on")
    folded = path.casefold()
    for temp in temp_dirs:
        base = temp.replace("\\", "/").rstrip("/").casefold()
        if base and folded.startswith(base + "/"):
            return (f"codex-pool runs from a temporary folder ({temp}) that may be gone at the next "
                    "login: install it first, then turn Start at login on")
    return None


def _exec_arg(arg: str) -> str:
    """One Exec argument, quoted per the Desktop Entry spec when it needs to be."""
    if arg and not any(ch in _EXEC_RESERVED for ch in arg):
        quoted = arg
    else:
        quoted = '"' + "".join("\\" + ch if ch in _EXEC_QUOTED_ESCAPES else ch for ch in arg) + '"'
    # The Exec value is also a desktop-entry "string": backslashes are escaped once more, and a
    # literal percent sign is written %% so it is not read as a field code.
    return quoted.replace("\\", "\\\\").replace("%", "%%")


def exec_line(command: Sequence[str]) -> str:
    """The value of ``Exec=`` for ``command``."""
    if not command:
        raise ValueError("empty command")
    return " ".join(_exec_arg(arg) for arg in command)


def desktop_entry(
    command: Sequence[str],
    *,
    icon: str = APP_NAME,
    autostart: bool = True,
    hidden: bool = False,
    environment: Mapping[str, str] | None = None,
) -> str:
    """A Desktop Entry for ``command``: the XDG autostart file, or (``autostart=False``) a menu entry.

    ``hidden=True`` writes ``Hidden=true``, which autostart implementations must treat as "off".
    ``environment`` is set for the command through ``env NAME=value ...``.
    """
    if environment:
        command = ["env", *(f"{name}={value}" for name, value in environment.items()), *command]
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        "Name=codex-pool",
        "GenericName=Codex account pool",
        "Comment=Use several ChatGPT (Codex) accounts as one",
        f"Exec={exec_line(command)}",
        f"Icon={icon}",
        "Terminal=false",
        "Categories=Utility;",
        "StartupNotify=false",
    ]
    program = command[len(environment) + 1] if environment else command[0]
    if program.startswith("/"):
        lines.append(f"TryExec={_exec_arg(program)}")
    if autostart:
        lines.append("X-GNOME-Autostart-enabled=true")
    if hidden:
        lines.append("Hidden=true")
    return "\n".join(lines) + "\n"


def desktop_entry_enabled(text: str) -> bool:
    """Whether an autostart file with this text would start the app (``Hidden=true`` = off)."""
    in_main_group = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            in_main_group = line == "[Desktop Entry]"
            continue
        if not in_main_group or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if key == "Hidden" and value.lower() == "true":
            return False
        if key == "X-GNOME-Autostart-enabled" and value.lower() == "false":
            return False
    return True


def launch_agent(command: Sequence[str], *, label: str = LAUNCH_AGENT_LABEL,
                 environment: Mapping[str, str] | None = None) -> bytes:
    """The macOS LaunchAgent plist: start at login, in GUI (Aqua) sessions only, with
    ``environment`` set."""
    if not command:
        raise ValueError("empty command")
    agent: dict[str, object] = {
        "Label": label,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "LimitLoadToSessionType": "Aqua",
        "ProcessType": "Interactive",
    }
    if environment:
        agent["EnvironmentVariables"] = dict(environment)
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=False)


def launch_agent_enabled(data: bytes) -> bool:
    """Whether a LaunchAgent plist with these bytes would start at login."""
    try:
        agent = plistlib.loads(data)
    except Exception:  # plistlib raises several unrelated types for junk input
        return False
    return isinstance(agent, dict) and agent.get("RunAtLoad") is True and agent.get("Disabled") is not True


def launchd_disabled(listing: str, label: str) -> bool:
    """Whether ``launchctl print-disabled gui/<uid>`` output lists ``label`` as disabled (lines
    ``"label" => disabled``; older systems write ``=> true``)."""
    for line in listing.splitlines():
        name, arrow, state = line.strip().partition("=>")
        if arrow and name.strip().strip('"') == label:
            return state.strip().lower() in ("disabled", "true")
    return False


def windows_run_value(command: Sequence[str]) -> str:
    """The ``HKCU\\...\\Run`` value data: the executable always quoted, the rest as Windows parses it."""
    if not command:
        raise ValueError("empty command")
    exe, *args = command
    tail = subprocess.list2cmdline(args)
    return f'"{exe}"' + (f" {tail}" if tail else "")


def startup_approved_disabled(data: bytes | None) -> bool:
    """Whether Explorer's ``StartupApproved\\Run`` blob says the user turned the entry off.

    The first byte is 02 (or 06) when enabled and 03 (or 07, 01) when the user disabled the entry
    in Task Manager or Settings; an odd first byte means disabled. No blob means enabled.
    """
    return data is not None and len(data) > 0 and data[0] % 2 == 1
