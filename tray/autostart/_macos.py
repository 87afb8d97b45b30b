"""macOS: a LaunchAgent plist in ``~/Library/LaunchAgents``.

Turning it on only writes the plist; launchd picks it up at the next login. Loading it now
(``launchctl bootstrap``) would start a second copy straight away because of ``RunAtLoad``, and the
running app would just be asked to show its window. Turning it off also unloads a loaded agent
(``launchctl bootout``) when launchctl is there; failures of that are harmless and ignored.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from tray.autostart import texts
from tray.errors import AutostartError
from tray.paths import write_atomic

Launchctl = Callable[[Sequence[str]], None]


def run_launchctl(args: Sequence[str]) -> None:
    """Run ``launchctl <args>`` quietly; a missing binary or a non-zero exit is ignored."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["launchctl", *args], capture_output=True, timeout=10, check=False)


class MacAutostart:
    def __init__(
        self,
        agents_dir: Path,
        command: Sequence[str],
        *,
        label: str = texts.LAUNCH_AGENT_LABEL,
        launchctl: Launchctl | None = None,
        uid: int | None = None,
    ) -> None:
        self.path = agents_dir / f"{label}.plist"
        self.label = label
        self.command = list(command)
        self.launchctl = launchctl
        self.uid = uid

    @property
    def location(self) -> str:
        return str(self.path)

    def enabled(self) -> bool:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise AutostartError(f"Could not read {self.path}: {exc.strerror or exc}") from exc
        return texts.launch_agent_enabled(data)

    def enable(self) -> None:
        data = texts.launch_agent(self.command, label=self.label)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, data, mode=0o644)
        except OSError as exc:
            raise AutostartError(f"Could not write {self.path}: {exc.strerror or exc}") from exc

    def disable(self) -> None:
        if self.launchctl is not None and self.uid is not None and self.path.exists():
            self.launchctl(["bootout", f"gui/{self.uid}/{self.label}"])
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise AutostartError(f"Could not remove {self.path}: {exc.strerror or exc}") from exc
