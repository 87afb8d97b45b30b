"""Real Codex CLI (both pinned versions) over the Responses WebSocket through codex-pool: the config
``setup codex`` writes (``supports_websockets = true``), a pool of two fake accounts behind the
proxy, and the fake backend's WebSocket endpoint (``tests/fakes/upstream_ws.py``) seeing what
arrives upstream."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fakes import replies
from tests.support.proxykit import Pool
from tray.clients.texts import codex_snippet

pytestmark = [pytest.mark.clients, pytest.mark.timeout(240)]


def run_codex(codex: Path, pool: Pool, home: Path, prompt: str = "say hi", *extra: str
              ) -> subprocess.CompletedProcess[str]:
    codex_home = home / "codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    config = 'model = "gpt-5.5"\n' + codex_snippet(pool.url, pool.engine.api_key)
    (codex_home / "config.toml").write_text(config, encoding="utf-8")
    return subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", *extra, prompt],
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


def test_a_tool_call_turn_continues_with_previous_response_id_on_the_same_upstream_socket(
    pool: Pool, codex: Path, tmp_path: Path
) -> None:
    # The prewarm (generate: false), then a function call Codex runs, then the answer.
    pool.upstream.script("a", replies.ok(), replies.tool_call("exec_command", '{"cmd": "echo tool-ran"}'),
                         replies.ok("done"))
    # No sandbox for the one harmless command: newer Codex wants its sandbox helper on PATH for it.
    done = run_codex(codex, pool, tmp_path, "run echo", "--sandbox", "danger-full-access")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "done"
    sent = pool.upstream.codex_requests()
    assert [r.account_id for r in sent] == ["a", "a", "a"] and {r.socket for r in sent} == {1}
    prewarm, ask, result = (r.body for r in sent)
    assert isinstance(prewarm, dict) and isinstance(ask, dict) and isinstance(result, dict)
    assert prewarm["generate"] is False and "previous_response_id" not in prewarm
    assert ask["previous_response_id"] and result["previous_response_id"] != ask["previous_response_id"]
    outputs = [item for item in result["input"] if item.get("type") == "function_call_output"]
    assert outputs and "tool-ran" in json.dumps(outputs)  # only the new items, not the whole context
    assert len(json.dumps(result["input"])) < len(json.dumps(prewarm["input"])) / 10
    assert_never_mixed(pool)


def test_a_refused_upgrade_fails_over_to_the_next_account(pool: Pool, codex: Path, tmp_path: Path) -> None:
    pool.upstream.script_handshake("a", replies.usage_limit(resets_in=3600))
    done = run_codex(codex, pool, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "Hi from b!"
    assert {r.account_id for r in pool.upstream.codex_requests()} == {"b"}
    assert pool.upstream.outcomes["handshake_429"] == 1
    until = pool.cooldown_until("a")
    assert until is not None  # the usage limit cools "a" down like an HTTP 429
    assert_never_mixed(pool)


def test_an_in_band_429_before_output_moves_the_socket_to_the_next_account(
    pool: Pool, codex: Path, tmp_path: Path
) -> None:
    pool.upstream.script("a", replies.usage_limit(resets_in=3600))  # refuses the prewarm in-band
    done = run_codex(codex, pool, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "Hi from b!"
    sent = pool.upstream.codex_requests()
    assert [r.account_id for r in sent][:1] == ["a"] and {r.account_id for r in sent[1:]} == {"b"}
    assert pool.cooldown_until("a") is not None
    assert_never_mixed(pool)


def test_previous_response_id_never_crosses_accounts(pool: Pool, codex: Path, tmp_path: Path) -> None:
    # "a" takes the prewarm, then refuses the request that continues it: that request cannot move,
    # so Codex is told the response is not found and sends its whole context again, which "b" serves.
    pool.upstream.script("a", replies.ok(), replies.usage_limit(resets_in=3600))
    done = run_codex(codex, pool, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "Hi from b!"
    sent = pool.upstream.codex_requests()
    on_a = [r.body for r in sent if r.account_id == "a"]
    assert len(on_a) == 2 and isinstance(on_a[1], dict) and on_a[1]["previous_response_id"]
    on_b = [r.body for r in sent if r.account_id == "b"]
    assert on_b and all(isinstance(b, dict) and "previous_response_id" not in b for b in on_b[:1])
    assert all(isinstance(b, dict) and b.get("previous_response_id") in (None, *made_on(pool, "b"))
               for b in on_b)
    assert len({r.socket for r in sent}) == 2  # Codex opened a new socket for the whole context
    pool.wait_bookkeeping()
    reasons = [d.reason for d in pool.engine.store.decisions(20)]
    assert any("previous_response_id cannot move" in r for r in reasons), reasons
    assert_never_mixed(pool)


def made_on(pool: Pool, account: str) -> set[str]:
    return {rid for rid, owner in pool.upstream.owners.responses.items() if owner == account}


def test_a_drop_after_output_reaches_codex_which_reconnects_with_its_whole_context(
    pool: Pool, codex: Path, tmp_path: Path
) -> None:
    # Output had started: the proxy must pass the drop on (never a silent switch or a short answer).
    pool.upstream.script("a", replies.ok(), replies.drop(after=6))
    done = run_codex(codex, pool, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "Hi from a!"
    sent = pool.upstream.codex_requests()
    assert [r.account_id for r in sent] == ["a", "a", "a"] and len({r.socket for r in sent}) == 2
    assert isinstance(sent[2].body, dict) and "previous_response_id" not in sent[2].body
    assert_never_mixed(pool)
