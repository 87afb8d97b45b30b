"""Real clients through a running codex-pool proxy: Codex CLI (``codex exec``, the current release and
the pinned older one, see :data:`tests.support.tools.CODEX_VERSIONS`) and the OpenAI Python SDK (streaming and
non-streaming ``responses.create``), with the fake ChatGPT backend behind the proxy. The fake sees the
pool account's token, never the client's key."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from tests.fakes import replies
from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import serving
from tests.fakes.upstream import FakeChatGPT, make_chatgpt
from tests.support.tools import CODEX_VERSIONS, codex_cli
from tray.clients.texts import codex_snippet
from tray.engine import Engine
from tray.models import Identity
from tray.paths import resolve_paths

pytestmark = pytest.mark.clients

POOL_ACCOUNT = FakeUser(account_id="acc-pool-1", subject="user-pool-1", email="pool@example.com")
SECOND = FakeUser(account_id="acc-pool-2", subject="user-pool-2", email="second@example.com")


@dataclass
class Pool:
    url: str
    key: str
    chatgpt: FakeChatGPT
    token: str  # the pool account's access token (what upstream must see)

    def upstream_saw_no_local_key(self) -> bool:
        return all(self.key not in json.dumps(rec.headers) for rec in self.chatgpt.upstream.requests)


@pytest.fixture
def pool(pool_home: Path, isolated_home: Path) -> Iterator[Pool]:
    chatgpt = make_chatgpt()
    with serving(chatgpt.app) as server:
        paths = resolve_paths({"CODEX_POOL_HOME": str(pool_home)}).ensure()
        paths.config_file.write_text(
            f'upstream-url = "{server.url}/backend-api"\nauth-url = "{server.url}"\nport = 0\n',
            encoding="utf-8",
        )
        engine = Engine(paths, import_primary=False, environ={"HOME": str(isolated_home)})
        auth = chatgpt.auth
        assert isinstance(auth, FakeAuth)
        tokens = auth.token_set(POOL_ACCOUNT)
        for user in (POOL_ACCOUNT, SECOND):  # the first one added is tried first
            # Windows already running, alike: a dormant window would pull requests to its account
            # (the dormant touch comes before affinity) as soon as its usage is fetched, a race.
            issued = tokens if user is POOL_ACCOUNT else auth.token_set(user)
            chatgpt.upstream.set_usage(user.account_id, primary_used=20, primary_reset_after_s=9000,
                                       secondary_used=10, secondary_reset_after_s=300_000)
            engine.store.save_login(Identity(user.account_id, user.subject), issued, user.email, user.plan)
        url = engine.start()
        try:
            yield Pool(url, engine.api_key, chatgpt, tokens.access_token)
        finally:
            engine.stop()


@pytest.fixture
def client(pool: Pool) -> Iterator[openai.OpenAI]:
    """An OpenAI SDK client on the proxy's /v1 with the local key (closed after the test)."""
    with openai.OpenAI(base_url=f"{pool.url}/v1", api_key=pool.key, max_retries=0) as sdk:
        yield sdk


@dataclass(frozen=True)
class Codex:
    version: str
    program: Path


@pytest.fixture(params=CODEX_VERSIONS, ids=lambda version: f"codex-{version}")
def codex(request: pytest.FixtureRequest) -> Codex:
    return Codex(request.param, codex_cli(request.param))


def run_codex(codex: Codex, codex_home: Path, config: str, env: dict[str, str]
              ) -> subprocess.CompletedProcess[str]:
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text('model = "gpt-5.5"\n' + config, encoding="utf-8")
    full_env = {**os.environ, **env, "CODEX_HOME": str(codex_home)}
    return subprocess.run(
        [str(codex.program), "exec", "--skip-git-repo-check", "say hi"],
        cwd=codex_home.parent,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )


def http_snippet(pool: Pool) -> str:
    """The config ``setup codex`` writes, less ``supports_websockets``: these tests hold the HTTP
    path to its promises (tests/clients/test_websocket.py does the same for the WebSocket)."""
    return codex_snippet(pool.url, pool.key).replace("supports_websockets = true\n", "")


def assert_upstream_got_pool_credentials(pool: Pool, originator: str | None = None) -> None:
    seen = pool.chatgpt.upstream.codex_requests()
    assert len(seen) == 1, pool.chatgpt.upstream.describe()
    request = seen[0]
    assert request.token == pool.token
    assert request.headers["chatgpt-account-id"] == POOL_ACCOUNT.account_id
    if originator is not None:
        assert request.headers.get("originator") == originator
    assert pool.upstream_saw_no_local_key()


def test_codex_exec_with_an_env_key_provider_goes_through_the_pool(
    pool: Pool, codex: Codex, tmp_path: Path
) -> None:
    config = (
        'model_provider = "codex-pool"\n\n[model_providers.codex-pool]\nname = "codex-pool"\n'
        f'base_url = "{pool.url}/backend-api/codex"\nwire_api = "responses"\nenv_key = "CODEX_POOL_KEY"\n'
    )
    done = run_codex(codex, tmp_path / "codex", config, {"CODEX_POOL_KEY": pool.key})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"Hi from {POOL_ACCOUNT.account_id}!"
    assert_upstream_got_pool_credentials(pool, "codex_exec")
    request = pool.chatgpt.upstream.codex_requests()[0]
    assert request.headers["user-agent"].startswith(f"codex_exec/{codex.version}")
    assert request.headers.get("session-id")  # the client's own headers are forwarded
    assert request.body["prompt_cache_key"] == request.headers["session-id"]


def test_codex_exec_with_the_config_setup_writes(pool: Pool, codex: Codex, tmp_path: Path) -> None:
    done = run_codex(codex, tmp_path / "codex", http_snippet(pool), {})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"Hi from {POOL_ACCOUNT.account_id}!"
    assert_upstream_got_pool_credentials(pool, "codex_exec")


def test_openai_sdk_streaming(pool: Pool, client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-5.5", input="say hi", stream=True))
    types = [event.type for event in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == f"Hi from {POOL_ACCOUNT.account_id}!"
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == f"Hi from {POOL_ACCOUNT.account_id}!"
    assert_upstream_got_pool_credentials(pool)


def test_openai_sdk_non_streaming_gets_the_final_response(pool: Pool, client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-5.5", input="say hi")
    assert response.output_text == f"Hi from {POOL_ACCOUNT.account_id}!"
    assert response.status == "completed"
    assert response.usage is not None
    upstream_body = pool.chatgpt.upstream.codex_requests()[0].body
    assert upstream_body["stream"] is True  # shaped for the Codex backend, which only streams
    assert upstream_body["store"] is False
    assert_upstream_got_pool_credentials(pool)


def test_codex_exec_answer_survives_a_usage_limit_on_the_first_account(
    pool: Pool, codex: Codex, tmp_path: Path
) -> None:
    pool.chatgpt.upstream.script(POOL_ACCOUNT.account_id, replies.usage_limit(resets_in=3600))
    done = run_codex(codex, tmp_path / "codex", http_snippet(pool), {})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"Hi from {SECOND.account_id}!"
    assert [r.account_id for r in pool.chatgpt.upstream.codex_requests()] == [
        POOL_ACCOUNT.account_id,
        SECOND.account_id,
    ]


def test_openai_sdk_stream_hides_an_overloaded_first_attempt(pool: Pool, client: openai.OpenAI) -> None:
    pool.chatgpt.upstream.script(POOL_ACCOUNT.account_id, replies.overloaded())
    events = list(client.responses.create(model="gpt-5.5", input="say hi", stream=True))
    types = [event.type for event in events]
    assert types.count("response.created") == 1
    assert "response.failed" not in types
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == f"Hi from {SECOND.account_id}!"


def test_codex_exec_reconnects_after_a_mid_stream_drop(pool: Pool, codex: Codex, tmp_path: Path) -> None:
    # The drop comes after output reached the client: the proxy must pass it on (no silent switch),
    # Codex reconnects on its own and the session stays on the same account.
    pool.chatgpt.upstream.script(POOL_ACCOUNT.account_id, replies.drop(after=6))
    done = run_codex(codex, tmp_path / "codex", http_snippet(pool), {})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Reconnecting" in done.stderr
    assert done.stdout.strip() == f"Hi from {POOL_ACCOUNT.account_id}!"
    assert [r.account_id for r in pool.chatgpt.upstream.codex_requests()] == [POOL_ACCOUNT.account_id] * 2


def test_openai_sdk_sees_a_mid_stream_drop_as_an_error_never_a_short_answer(
    pool: Pool, client: openai.OpenAI
) -> None:
    upstream = pool.chatgpt.upstream
    upstream.script(POOL_ACCOUNT.account_id, replies.drop(after=6))
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(model="gpt-5.5", input="say hi", stream=True))
    upstream.script(POOL_ACCOUNT.account_id, replies.drop(after=6))
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="gpt-5.5", input="say hi")
    assert caught.value.status_code == 502
