"""Packaging: the menu entry, an install from source into a fresh virtualenv, and the one-folder
PyInstaller build (built once, then started with --version)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tray import __version__
from tray.autostart import texts

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"


def test_menu_entry_is_valid_and_matches_the_generator() -> None:
    entry = PACKAGING / "codex-pool.desktop"
    assert entry.read_text() == texts.desktop_entry(["codex-pool"], autostart=False)
    result = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout


def test_icons_for_every_platform_are_there() -> None:
    assert (PACKAGING / "codex-pool.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (PACKAGING / "codex-pool.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"
    assert (PACKAGING / "codex-pool.icns").read_bytes()[:4] == b"icns"


def _source_copy(dest: Path) -> Path:
    """The files a source install needs, without the repo's .venv and caches."""
    dest.mkdir()
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    shutil.copy(ROOT / "README.md", dest / "README.md")
    shutil.copytree(ROOT / "tray", dest / "tray", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pip_install_into_a_fresh_venv_gives_a_working_command(tmp_path: Path) -> None:
    source = _source_copy(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    run = subprocess.run([str(env_dir / "bin" / "codex-pool"), "--version"], capture_output=True, text=True)
    assert run.stdout.strip() == f"codex-pool {__version__}", run.stderr
    tray = subprocess.run([str(env_dir / "bin" / "codex-pool-tray"), "--version"], capture_output=True,
                          text=True)
    assert tray.stdout.strip() == f"codex-pool {__version__}", tray.stderr  # pythonw's on Windows: no console
    ui = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.resources as r; print(r.files('tray').joinpath('ui/index.html').is_file())",
        ],
        capture_output=True,
        text=True,
    )
    assert ui.stdout.strip() == "True"  # the web UI ships as package data


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one-folder PyInstaller build of packaging/codex-pool.spec, built once for this module."""
    pytest.importorskip("PyInstaller")
    base = tmp_path_factory.mktemp("pyinstaller")
    dist, work = base / "dist", base / "build"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "ERROR",
            "--distpath",
            str(dist),
            "--workpath",
            str(work),
            str(PACKAGING / "codex-pool.spec"),
        ],
        capture_output=True,
        text=True,
        cwd=base,
        timeout=840,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return dist / "codex-pool"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pyinstaller_one_folder_build_starts(bundle: Path) -> None:
    run = subprocess.run([str(bundle / "codex-pool"), "--version"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"codex-pool {__version__}"
    assert (bundle / "_internal" / "tray" / "ui" / "index.html").is_file()


@pytest.mark.slow
@pytest.mark.gui
@pytest.mark.timeout(900)
def test_the_built_bundle_opens_the_pool_window(bundle: Path, pool_home: Path, xvfb: str,
                                                session_bus: str) -> None:
    """The tray in a bundle starts its window with the bundle's own executable: the window maps on
    the screen, loads the pool's page, and the page trades its one-time code for a session."""
    import time

    from tests.desktop.test_window import window_id
    from tests.fakes.apphost import running_engine
    from tests.support.gui_fixtures import gui_env
    from tray.desktop.window import WindowProcess, window_command

    log = pool_home / "window.log"
    with running_engine() as pool:
        engine = pool.engine
        url = engine.ui_url
        code = url.split("#code=", 1)[1]
        window = WindowProcess(window_command(str(bundle / "codex-pool"), frozen=True),
                               env=gui_env(xvfb, session_bus), log=log)
        try:
            assert window.open(url)
            pid = window.pid
            assert pid is not None
            window_id(xvfb, pid)  # the window mapped (raises when it never does)
            deadline = time.monotonic() + 60
            while engine.sessions.unspent(code) and time.monotonic() < deadline:
                assert window.failed(within=0.2) is None, log.read_text()
            assert not engine.sessions.unspent(code), "the page never took its code"
        finally:
            window.close()
