"""The real client programs ``./dev`` installs for the real-client tests, and where they are.

Codex CLI is installed once per version in :data:`CODEX_VERSIONS` (the current release and the
pinned older one), each in its own npm prefix ``.tools/codex-<version>``; opencode in ``.tools``.
The versions are read from ``./dev`` so the installer and the tests cannot disagree.
``CODEX_POOL_TOOLS`` points at another ``.tools`` (``./dev test`` sets it to its own).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("CODEX_POOL_TOOLS", ROOT / ".tools"))


def _dev_versions() -> tuple[str, ...]:
    found = re.search(r"^CODEX_VERSIONS=\(([^)]*)\)", (ROOT / "dev").read_text(encoding="utf-8"), re.M)
    assert found is not None, "./dev no longer sets CODEX_VERSIONS=(...)"
    return tuple(found.group(1).split())


CODEX_VERSIONS = _dev_versions()
OPENCODE = TOOLS / "bin" / "opencode"


def codex_cli(version: str) -> Path:
    """The ``codex`` program of that version (the test is skipped, which fails it in CI, when
    ``./dev`` has not installed it)."""
    path = TOOLS / f"codex-{version}" / "bin" / "codex"
    if not path.exists():
        pytest.skip(f"Codex CLI {version} not installed at {path} (./dev test installs it with npm)")
    return path
