"""The clients room's fixtures: each pinned Codex CLI release, and a pool of two fake accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.proxykit import Pool, running_pool
from tests.support.tools import CODEX_VERSIONS, codex_cli


@pytest.fixture(params=CODEX_VERSIONS, ids=lambda version: f"codex-{version}")
def codex(request: pytest.FixtureRequest) -> Path:
    """The Codex CLI binary of each pinned release (the test runs once per release)."""
    return codex_cli(request.param)


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_pool(["a", "b"]) as pool:
        yield pool
