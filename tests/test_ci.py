"""What keeps CI honest: the rule in tests/support/ciskips.py, run on tiny test files in a child pytest (with
``CI=true`` every kind of skip fails the run; without it a skip is still only a skip), and the pins
in pyproject.toml (exact for the tools that gate the suite, upper bounds where the code reads a
library's internals)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

PASSING = "def test_fine() -> None:\n    assert True\n"

SKIPS = {
    "unmarked": "import pytest\n\ndef test_it() -> None:\n    pytest.skip('port in use')\n",
    "collection": "import pytest\n\npytest.importorskip('no_such_module_for_ci')\n\n"
                  "def test_it() -> None:\n    assert True\n",
    "fixture": "import pytest\n\n@pytest.fixture\ndef tool() -> None:\n    pytest.skip('tool missing')\n\n"
               "def test_it(tool: None) -> None:\n    assert True\n",
    "skipif": "import pytest\n\n@pytest.mark.skipif(True, reason='not here')\ndef test_it() -> None:\n"
              "    assert True\n",
    "xfail": "import pytest\n\n@pytest.mark.xfail(reason='known broken')\ndef test_it() -> None:\n"
             "    assert False\n",
}


def run_child(folder: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    (folder / "pytest.ini").write_text("[pytest]\n")  # the child's rootdir: not this project's config
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.ciskips", "-p", "no:cacheprovider", "-q", "-rA",
         "."],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("kind", sorted(SKIPS))
def test_a_skip_fails_the_run_in_ci(kind: str, tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text(PASSING)
    (tmp_path / f"test_{kind}.py").write_text(SKIPS[kind])
    done = run_child(tmp_path, ci=True)
    out = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert f"test_{kind}.py" in out and ("did not run in CI" in out or "fails the run in CI" in out), out
    assert "1 passed" in out  # the rest of the run still ran


def test_without_ci_a_skip_is_a_skip_and_a_clean_run_passes_in_ci(tmp_path: Path) -> None:
    for kind, text in SKIPS.items():
        (tmp_path / f"test_{kind}.py").write_text(text)
    (tmp_path / "test_ok.py").write_text(PASSING)
    local = run_child(tmp_path, ci=False)
    assert local.returncode == pytest.ExitCode.OK, local.stdout + local.stderr
    assert "1 passed, 4 skipped, 1 xfailed" in local.stdout, local.stdout
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "test_ok.py").write_text(PASSING)
    ci = run_child(clean, ci=True)
    assert ci.returncode == pytest.ExitCode.OK, ci.stdout + ci.stderr


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_tools_that_gate_the_suite_are_pinned_and_are_the_ones_running() -> None:
    pins = _pyproject()["project"]["optional-dependencies"]["test"]
    loose = [spec for spec in pins if not re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", spec)]
    assert loose == [], f"test tools must be pinned exactly: {loose}"
    for spec in pins:
        name, version = spec.split("==")
        assert metadata.version(name) == version, f"{name} {metadata.version(name)} runs, {version} is pinned"


def test_libraries_whose_internals_the_code_reads_have_upper_bounds() -> None:
    deps = {re.split(r"[<>=!~; ]", spec, maxsplit=1)[0].lower(): spec
            for spec in _pyproject()["project"]["dependencies"]}
    for name in ("httpx", "httpcore", "uvicorn", "pystray"):
        assert "<" in deps[name], f"{name} needs an upper bound: {deps[name]}"
        assert Requirement(deps[name]).specifier.contains(metadata.version(name)), deps[name]
