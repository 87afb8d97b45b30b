"""Attacks by other local users and by whoever gets hold of a management credential: pointing the
pool's tokens at another server, squatting the proxy's port while codex-pool is down, and
poking the tray's single-instance socket. Where the attack needs a second user, the test creates one
and runs the attacker as that user."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.fakes.runner import ServerThread, serving
from tests.proxykit import Pool, running_pool, write_config


class Collector:
    """A server that records what it is sent (the attacker's "upstream")."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        self.seen.append((request.url.path, request.headers.get("authorization", "")))
        await JSONResponse({"ok": True})(scope, receive, send)


@pytest.fixture
def evil() -> Iterator[tuple[Collector, ServerThread]]:
    collector = Collector()
    with serving(collector) as server:
        yield collector, server


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_pool(["a"]) as running:
        yield running


def fetch_usage(pool: Pool) -> None:
    quota, account = pool.engine.quota, pool.account("a")
    assert quota is not None

    async def load() -> object:
        return await quota.load(account, force=True)

    pool.engine.submit(load()).result(15)


def test_the_management_api_cannot_send_the_tokens_elsewhere(
    pool: Pool, evil: tuple[Collector, ServerThread]
) -> None:
    collector, server = evil
    path = pool.engine.paths.config_file
    before = path.read_text()
    with httpx.Client(base_url=pool.url + "/api", headers={"X-Codex-Pool-Token": pool.engine.ui_token},
                      trust_env=False) as api:
        for key, value in (("upstream-url", f"{server.url}/backend-api"), ("auth-url", server.url)):
            answer = api.put("/settings", json={"values": {key: value}})
            assert answer.status_code == 403, answer.text
            assert "config.toml" in answer.json()["problems"][key]
            assert path.read_text() == before
        # The window sends every field back on save: an unchanged value is not a change.
        same = api.put("/settings", json={"values": {"upstream-url": pool.engine.config.upstream_url,
                                                     "sticky-mode": "disabled"}})
        assert same.status_code == 200, same.text
    assert pool.post().status_code == 200
    fetch_usage(pool)
    assert collector.seen == []


def test_an_edited_upstream_url_waits_for_a_restart_and_is_logged(
    pool: Pool, evil: tuple[Collector, ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    collector, server = evil
    caplog.set_level(logging.WARNING, logger="tray")
    real = pool.engine.config.upstream_url
    values = {"upstream-url": f"{server.url}/backend-api", "auth-url": server.url, "sticky-mode": "disabled"}
    write_config(pool.engine.paths.config_dir, values)
    pool.engine.reload_config()
    assert pool.engine.config.sticky_mode == "disabled"  # other keys apply at once
    assert pool.engine.config.upstream_url == real
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("upstream-url" in w and server.url in w and "restart" in w for w in warnings), warnings
    assert any("auth-url" in w and server.url in w for w in warnings), warnings
    assert pool.post().status_code == 200
    fetch_usage(pool)
    assert collector.seen == []
