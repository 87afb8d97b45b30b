"""The code stays as style.md asks: ruff clean everywhere and ``mypy --strict`` clean for the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_mypy_strict_is_clean_on_windows_and_macos(platform: str) -> None:
    """The package type-checks as it is on Windows and macOS (Python 3.11): a call that exists only
    on some systems (``os.fchmod``, ``os.getuid``, ``resource``) must sit behind a platform check."""
    result = _run("mypy", "--strict", "--no-incremental", "--platform", platform,
                  "--python-version", "3.11", "tray")
    assert result.returncode == 0, result.stdout + result.stderr


def test_comments_speak_of_the_project_itself() -> None:
    """Docstrings and comments say the rule, not a reference to notes outside the repository
    ("gap 13", "the seed", "Decision 3")."""
    import re

    pattern = re.compile(r"\bgaps? \d+|\bthe seed\b|\bseed (plugin|gaps?)\b|\b[Dd]ecision \d+\b")
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "tray").rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if pattern.search(line)]
    assert not found, "\n".join(found)
