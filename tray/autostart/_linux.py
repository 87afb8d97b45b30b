"""Linux (and other XDG desktops): ``$XDG_CONFIG_HOME/autostart/codex-pool.desktop``.

Per the XDG Autostart spec a missing file or ``Hidden=true`` means "do not start"; turning it off
removes our file, which also drops a ``Hidden=true`` copy someone else left.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tray.autostart import texts
from tray.errors import AutostartError
from tray.paths import write_atomic


def autostart_dir(environ: dict[str, str] | os._Environ[str]) -> Path:
    config_home = environ.get("XDG_CONFIG_HOME") or ""
    base = Path(config_home) if config_home and Path(config_home).is_absolute() else None
    if base is None:
        base = Path(environ.get("HOME") or Path.home()) / ".config"
    return base / "autostart"


class LinuxAutostart:
    def __init__(self, directory: Path, command: Sequence[str],
                 environment: Mapping[str, str] | None = None) -> None:
        self.path = directory / texts.DESKTOP_FILE_NAME
        self.command = list(command)
        self.environment = dict(environment or {})

    @property
    def location(self) -> str:
        return str(self.path)

    def enabled(self) -> bool:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise AutostartError(f"Could not read {self.path}: {exc.strerror or exc}") from exc
        return texts.desktop_entry_enabled(text)

    def enable(self) -> None:
        text = texts.desktop_entry(self.command, environment=self.environment)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, text, mode=0o644)
        except OSError as exc:
            raise AutostartError(f"Could not write {self.path}: {exc.strerror or exc}") from exc

    def disable(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise AutostartError(f"Could not remove {self.path}: {exc.strerror or exc}") from exc
