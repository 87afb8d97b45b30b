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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tray.autostart import texts
from tray.autostart._linux import LinuxAutostart, autostart_dir
from tray.autostart._macos import MacAutostart, run_launchctl
from tray.autostart._windows import Registry, WindowsAutostart, WinRegistry

__all__ = [
    "Autostart",
    "AutostartStatus",
    "backend",
    "current_command",
    "disable",
    "enable",
    "enabled",
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
    """The autostart backend for ``platform`` (default: this one)."""
    plat = sys.platform if platform is None else platform
    env = dict(os.environ if environ is None else environ)
    cmd = list(command) if command is not None else current_command()
    if plat == "win32":
        return WindowsAutostart(registry if registry is not None else WinRegistry(), cmd)
    if plat == "darwin":
        home = Path(env.get("HOME") or Path.home())
        launchctl = run_launchctl if shutil.which("launchctl") else None
        uid = os.getuid() if hasattr(os, "getuid") else None
        return MacAutostart(home / "Library" / "LaunchAgents", cmd, launchctl=launchctl, uid=uid)
    return LinuxAutostart(autostart_dir(env), cmd)


def enabled() -> bool:
    return backend().enabled()


def enable() -> None:
    backend().enable()


def disable() -> None:
    backend().disable()


def status() -> AutostartStatus:
    entry = backend()
    return AutostartStatus(enabled=entry.enabled(), location=entry.location, command=tuple(entry.command))
