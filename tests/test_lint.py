"""The code stays as style.md asks: ruff clean everywhere and ``mypy --strict`` clean for the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "tray", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean_for_the_package() -> None:
    result = _run("mypy", "--strict", "--no-incremental", "tray")
    assert result.returncode == 0, result.stdout + result.stderr
