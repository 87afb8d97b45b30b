"""Shared fixtures. Every test runs with HOME, XDG dirs, CODEX_HOME and CODEX_POOL_HOME pointing into
its own temp folder, so nothing touches the real profile."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = (
    "tests.support.gui_fixtures",  # Xvfb, private D-Bus, fake notification server, tray host
    "tests.support.ciskips",  # in CI (CI=true) every skip fails the run
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("CODEX_HOME", str(home / ".codex"))
    monkeypatch.setenv("CODEX_POOL_HOME", str(tmp_path / "pool"))
    monkeypatch.delenv("CODEX_POOL_API_KEY", raising=False)
    yield home


@pytest.fixture
def pool_home(isolated_home: Path) -> Path:
    return Path(os.environ["CODEX_POOL_HOME"])
