"""Fixtures of the auth tests: the fake auth server (a real HTTP server on loopback) and a pool file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.auth_server import FakeAuth
from tests.fakes.runner import ServerThread, serving
from tray.store import Store


@pytest.fixture
def fake() -> FakeAuth:
    return FakeAuth()


@pytest.fixture
def server(fake: FakeAuth) -> Iterator[ServerThread]:
    with serving(fake.app) as running:
        yield running


@pytest.fixture
def store(pool_home: Path) -> Iterator[Store]:
    db = Store.open(pool_home / "pool.db", time.time)
    yield db
    db.close()
