"""Start codex-pool at login: one face over the per-OS backends.

``enabled()``, ``enable()``, ``disable()`` and ``status()`` act on the current user's real entry
(XDG autostart file on Linux and other Unix desktops, LaunchAgent on macOS, the HKCU Run value on
Windows). :func:`backend` builds the backend for any platform from injected facts, so tests and
other platforms' logic run anywhere. The entry texts are built in :mod:`tray.autostart.texts`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tray.autostart import texts
from tray.autostart._linux import LinuxAutostart, autostart_dir
from tray.autostart._macos import MacAutostart, run_launchctl
from tray.autostart._windows import Registry, WindowsAutostart, WinRegistry
from tray.errors import AutostartError

__all__ = [
    "Autostart",
    "AutostartStatus",
    "backend",
    "current_command",
    "disable",
    "enable",
    "enabled",
    "notes",
    "status",
]


class Autostart(Protocol):
    command: list[str]

    @property
    def location(self) -> str: ...

    def enabled(self) -> bool: ...

    def enable(self) -> None: ...

    def disable(self) -> None: ...


@dataclass(frozen=True)
class AutostartStatus:
    enabled: bool
    location: str  # the file path or registry value that holds the entry
    command: tuple[str, ...]  # what the entry starts (or would start once turned on)

    @property
    def word(self) -> str:
        return "on" if self.enabled else "off"


def current_command() -> list[str]:
    """The command that starts this installed codex-pool (see :func:`texts.launch_command`)."""
    return texts.launch_command(
        executable=sys.executable,
        platform=sys.platform,
        frozen=bool(getattr(sys, "frozen", False)),
        script_exists=lambda path: os.path.isfile(path) and os.access(path, os.X_OK),
        which=shutil.which,
    )


def backend(
    *,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    registry: Registry | None = None,
) -> Autostart:
    """The autostart backend for ``platform`` (default: this one). The entry carries the variables
    that choose the pool (``CODEX_POOL_HOME``, ``CODEX_HOME``) as set now; on macOS and Windows an
    entry for a program in a temporary place is refused when turned on."""
    plat = sys.platform if platform is None else platform
    env = dict(os.environ if environ is None else environ)
    cmd = list(command) if command is not None else current_command()
    pool = texts.pool_environment(env)
    entry: Autostart
    if plat == "win32":
        entry = WindowsAutostart(registry if registry is not None else WinRegistry(), cmd)
    elif plat == "darwin":
        home = Path(env.get("HOME") or Path.home())
        launchctl = run_launchctl if shutil.which("launchctl") else None
        entry = MacAutostart(home / "Library" / "LaunchAgents", cmd, launchctl=launchctl, uid=_uid(),
                             environment=pool)
    else:
        return LinuxAutostart(autostart_dir(env), cmd, environment=pool)
    temps = [tempfile.gettempdir(), *(env[name] for name in ("TMPDIR", "TEMP", "TMP") if env.get(name))]
    problem = texts.unsafe_location(cmd[0], temps)
    return entry if problem is None else _Refused(entry, problem)


def _uid() -> int | None:
    if sys.platform == "win32":
        return None
    return os.getuid()


class _Refused:
    """An entry that must not be turned on (see :func:`texts.unsafe_location`); reading it and
    turning it off still work."""

    def __init__(self, entry: Autostart, problem: str) -> None:
        self._entry = entry
        self.problem = problem
        self.command = entry.command

    @property
    def location(self) -> str:
        return self._entry.location

    def enabled(self) -> bool:
        return self._entry.enabled()

    def enable(self) -> None:
        raise AutostartError(f"Start at login was not turned on: {self.problem}.")

    def disable(self) -> None:
        self._entry.disable()


def notes(platform: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """What the user should know after turning the entry on. Windows' Run value cannot carry
    variables: a pool chosen with ``CODEX_POOL_HOME``/``CODEX_HOME`` in this terminal alone is not
    the one the tray opens at login."""
    plat = sys.platform if platform is None else platform
    pool = texts.pool_environment(os.environ if environ is None else environ)
    if plat != "win32" or not pool:
        return []
    return [f"{name} is set here; the tray started at login sees it only when it is set for your user "
            f'too (setx {name} "{value}").' for name, value in pool.items()]


def enabled() -> bool:
    return backend().enabled()


def enable() -> None:
    backend().enable()


def disable() -> None:
    backend().disable()


def status() -> AutostartStatus:
    entry = backend()
    return AutostartStatus(enabled=entry.enabled(), location=entry.location, command=tuple(entry.command))
