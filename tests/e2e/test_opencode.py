"""The real opencode (1.18.33) through a running codex-pool, configured by ``codex-pool setup opencode``:
its built-in ``openai`` provider (``@ai-sdk/openai``, Responses API) posts to the proxy's /v1 with the
local key, and the fake ChatGPT backend behind the proxy sees the pool account's token instead."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.auth_server import FakeUser
from tests.fakes.upstream import FakeChatGPT
from tests.support.proxykit import setup_pool
from tray.cli import main
from tray.clients import files as clients
from tray.paths import api_key, resolve_paths

ROOT = Path(__file__).resolve().parents[2]
OPENCODE = Path(os.environ.get("CODEX_POOL_TOOLS", ROOT / ".tools")) / "bin" / "opencode"
USER = FakeUser(account_id="acc-opencode-1", subject="user-opencode-1", email="opencode@example.com")
OPENCODE_JSON = b'{\n  "$schema": "https://opencode.ai/config.json",\n  "model": "openai/gpt-5.5"\n}\n'


@pytest.fixture
def running_pool(pool_home: Path, isolated_home: Path) -> Iterator[tuple[FakeChatGPT, str]]:
    with setup_pool(USER, isolated_home) as (chatgpt, token):
        yield chatgpt, token


@pytest.mark.clients
@pytest.mark.timeout(120)
def test_opencode_run_goes_through_the_pool_after_setup_and_undo_restores_the_file(
    running_pool: tuple[FakeChatGPT, str], isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not OPENCODE.exists():
        pytest.skip(f"opencode not installed at {OPENCODE} (./dev test installs it with npm)")
    chatgpt, pool_token = running_pool
    config = clients.config_path("opencode")
    config.parent.mkdir(parents=True)
    config.write_bytes(OPENCODE_JSON)
    assert main(["setup", "opencode"]) == 0
    capsys.readouterr()
    work = isolated_home / "project"
    work.mkdir()
    done = subprocess.run(
        [str(OPENCODE), "run", "say hi"],
        cwd=work,
        # XDG_* already point into the test's home; no models.dev fetch (no network here): opencode
        # knows gpt-5.5 from the catalogue bundled in the binary.
        env={**os.environ, "OPENCODE_DISABLE_MODELS_FETCH": "1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Hi from {USER.account_id}!" in done.stdout
    seen = chatgpt.upstream.codex_requests()  # the title request and the answer
    assert seen, chatgpt.upstream.describe()
    assert all(request.token == pool_token for request in seen)
    assert all(request.headers["chatgpt-account-id"] == USER.account_id for request in seen)
    assert seen[-1].headers["originator"] == "opencode"
    assert seen[-1].body["model"] == "gpt-5.5"  # the model picked in opencode.json reaches upstream
    key = api_key(resolve_paths())
    assert all(key not in json.dumps(request.headers) for request in chatgpt.upstream.requests)

    assert main(["setup", "opencode", "--undo"]) == 0
    assert config.read_bytes() == OPENCODE_JSON
