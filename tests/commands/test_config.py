"""``codex-pool config path|check``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tray.cli import main

CLI = Path(sys.executable).parent / "codex-pool"


def test_path_prints_the_file_under_codex_pool_home(
    pool_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(pool_home / "config.toml")


def test_check_creates_a_missing_file_and_says_ok(
    pool_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out.strip() == f"config OK: {pool_home / 'config.toml'}"
    assert (pool_home / "config.toml").exists()


def test_check_lists_every_problem_and_fails(
    pool_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool_home.mkdir(parents=True, exist_ok=True)
    (pool_home / "config.toml").write_text('port = "abc"\nfast-mode = "turbo"\nsticky-mode = "always"\n')
    assert main(["config", "check"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith('"port" must be an integer from 0 to 65535 (got "abc"); using 4455')
    assert '"fast-mode"' in lines[1]


def test_check_reports_invalid_toml_via_the_installed_command(pool_home: Path) -> None:
    pool_home.mkdir(parents=True, exist_ok=True)
    path = pool_home / "config.toml"
    path.write_text("port = = 1\n")
    done = subprocess.run([CLI, "config", "check"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "not valid TOML" in done.stdout and str(path) in done.stdout
    assert path.read_text() == "port = = 1\n"
    shown = subprocess.run([CLI, "config", "path"], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0 and shown.stdout.strip() == str(path)
