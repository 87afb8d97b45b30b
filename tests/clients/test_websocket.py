"""Real Codex CLI (both pinned versions) over the Responses WebSocket through codex-pool: the config
``setup codex`` writes (``supports_websockets = true``), a pool of two fake accounts behind the
proxy, and the fake backend's WebSocket endpoint (``tests/fakes/upstream_ws.py``) seeing what
arrives upstream."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import replies
from tests.support.proxykit import Pool, running_pool
from tests.support.tools import CODEX_VERSIONS, codex_cli
from tray.clients.texts import codex_snippet

pytestmark = [pytest.mark.clients, pytest.mark.timeout(240)]


@pytest.fixture(params=CODEX_VERSIONS, ids=lambda version: f"codex-{version}")
def codex(request: pytest.FixtureRequest) -> Path:
    return codex_cli(request.param)


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_pool(["a", "b"]) as pool:
        yield pool


def run_codex(codex: Path, pool: Pool, home: Path, prompt: str = "say hi") -> subprocess.CompletedProcess[str]:
    codex_home = home / "codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    config = 'model = "gpt-5.5"\n' + codex_snippet(pool.url, pool.engine.api_key)
    (codex_home / "config.toml").write_text(config, encoding="utf-8")
    return subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", prompt],
        cwd=home, env={**os.environ, "CODEX_HOME": str(codex_home)}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=180,
    )


def socket_messages(pool: Pool) -> list[dict[str, object]]:
    return [r.body for r in pool.upstream.codex_requests() if r.over_websocket and isinstance(r.body, dict)]


def assert_never_mixed(pool: Pool) -> None:
    """No account ever received another account's response id or encrypted reasoning."""
    outcomes = pool.upstream.outcomes
    assert outcomes["foreign_previous_response"] == 0 and outcomes["foreign_reasoning"] == 0, outcomes
    key = pool.engine.api_key
    assert all(key not in json.dumps(r.headers) + json.dumps(r.body) for r in pool.upstream.requests)


def test_a_turn_arrives_upstream_over_a_websocket_with_a_pool_token(
    pool: Pool, codex: Path, tmp_path: Path
) -> None:
    done = run_codex(codex, pool, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "Hi from a!"
    sent = pool.upstream.codex_requests()
    assert sent and all(r.over_websocket and r.account_id == "a" for r in sent), pool.upstream.describe()
    assert {r.socket for r in sent} == {1}  # one upstream socket for the session
    assert sent[0].headers["authorization"] == f"Bearer {pool.account('a').tokens.access_token}"
    assert sent[0].headers["chatgpt-account-id"] == "a"
    assert sent[0].headers["openai-beta"].startswith("responses_websockets=")
    assert_never_mixed(pool)
    pool.wait_bookkeeping()
    routes = [d.route for d in pool.engine.store.decisions(10)]
    assert routes.count("responses.ws") == len(sent)  # each response.create is a decision
