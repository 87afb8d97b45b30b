"""macOS: a LaunchAgent plist in ``~/Library/LaunchAgents``.

Turning it on only writes the plist; launchd picks it up at the next login. Loading it now
(``launchctl bootstrap``) would start a second copy straight away because of ``RunAtLoad``, and the
running app would just be asked to show its window. Turning it off only deletes the plist: the
agent launchd started at login *is* the running tray, and ``launchctl bootout`` would kill it.

Since macOS 13 the user can also switch the agent off under System Settings > General > Login
Items ("Allow in the Background"); launchd then keeps it disabled, which ``launchctl print-disabled
gui/<uid>`` reports (:func:`texts.launchd_disabled`), so :meth:`MacAutostart.enabled` reads both,
as the Windows backend reads StartupApproved.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tray.autostart import texts
from tray.errors import AutostartError
from tray.paths import write_atomic

Launchctl = Callable[[Sequence[str]], str]


def run_launchctl(args: Sequence[str]) -> str:
    """``launchctl <args>``'s output; empty when launchctl is missing or fails."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["launchctl", *args], capture_output=True, text=True, timeout=10, check=False)
        return done.stdout if done.returncode == 0 else ""
    return ""


class MacAutostart:
    def __init__(
        self,
        agents_dir: Path,
        command: Sequence[str],
        *,
        label: str = texts.LAUNCH_AGENT_LABEL,
        launchctl: Launchctl | None = None,
        uid: int | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.path = agents_dir / f"{label}.plist"
        self.label = label
        self.command = list(command)
        self.launchctl = launchctl
        self.uid = uid
        self.environment = dict(environment or {})

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
        if not texts.launch_agent_enabled(data):
            return False
        if self.launchctl is None or self.uid is None:
            return True
        return not texts.launchd_disabled(self.launchctl(["print-disabled", f"gui/{self.uid}"]), self.label)

    def enable(self) -> None:
        data = texts.launch_agent(self.command, label=self.label, environment=self.environment)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, data, mode=0o644)
        except OSError as exc:
            raise AutostartError(f"Could not write {self.path}: {exc.strerror or exc}") from exc

    def disable(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise AutostartError(f"Could not remove {self.path}: {exc.strerror or exc}") from exc
