r"""Windows: a value under ``HKCU\Software\Microsoft\Windows\CurrentVersion\Run``.

Task Manager's Startup tab does not delete the Run value when the user turns an entry off; it
records that in ``...\Explorer\StartupApproved\Run`` instead, so :meth:`enabled` reads both.
Turning the entry on from codex-pool is an explicit user choice, so it clears that record too.
The registry sits behind the tiny :class:`Registry` interface; :class:`WinRegistry` is the real
one (``winreg`` is imported only when it is used, so this module imports on any OS).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from tray.autostart import texts
from tray.errors import AutostartError

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"


class Registry(Protocol):
    """HKEY_CURRENT_USER, reduced to what autostart needs. Missing keys/values read as None."""

    def read(self, key: str, name: str) -> str | bytes | None: ...

    def write_string(self, key: str, name: str, value: str) -> None: ...

    def delete(self, key: str, name: str) -> None:
        """Delete a value; a missing key or value is not an error."""
        ...


def _winreg() -> Any:
    # Imported by name at use: the module exists only on Windows, and typeshed hides it elsewhere.
    return importlib.import_module("winreg")


class WinRegistry:
    """The real registry through ``winreg`` (Windows only)."""

    def read(self, key: str, name: str) -> str | bytes | None:
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:
                value, _kind = winreg.QueryValueEx(handle, name)
        except FileNotFoundError:
            return None
        return value if isinstance(value, str | bytes) else None

    def write_string(self, key: str, name: str, value: str) -> None:
        winreg = _winreg()
        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, key) as handle:
            winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)

    def delete(self, key: str, name: str) -> None:
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
                winreg.DeleteValue(handle, name)
        except FileNotFoundError:
            pass


class WindowsAutostart:
    def __init__(
        self,
        registry: Registry,
        command: Sequence[str],
        *,
        name: str = texts.WINDOWS_VALUE_NAME,
    ) -> None:
        self.registry = registry
        self.command = list(command)
        self.name = name

    @property
    def location(self) -> str:
        return f"HKEY_CURRENT_USER\\{RUN_KEY}\\{self.name}"

    def enabled(self) -> bool:
        try:
            value = self.registry.read(RUN_KEY, self.name)
            if not isinstance(value, str) or not value.strip():
                return False
            approved = self.registry.read(APPROVED_KEY, self.name)
        except OSError as exc:
            raise AutostartError(f"Could not read the registry: {exc.strerror or exc}") from exc
        return not texts.startup_approved_disabled(approved if isinstance(approved, bytes) else None)

    def enable(self) -> None:
        try:
            self.registry.write_string(RUN_KEY, self.name, texts.windows_run_value(self.command))
            self.registry.delete(APPROVED_KEY, self.name)
        except OSError as exc:
            raise AutostartError(f"Could not write the registry: {exc.strerror or exc}") from exc

    def disable(self) -> None:
        try:
            self.registry.delete(RUN_KEY, self.name)
            self.registry.delete(APPROVED_KEY, self.name)
        except OSError as exc:
            raise AutostartError(f"Could not write the registry: {exc.strerror or exc}") from exc
