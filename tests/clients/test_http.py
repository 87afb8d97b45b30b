"""Real Codex CLI (both pinned versions) over plain HTTP through codex-pool (a provider without
``supports_websockets``, as older setups and Codex's own fallback use): a session whose context
carries one account's encrypted reasoning moving to another account mid-turn."""

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


def run_codex_over_http(codex: Path, pool: Pool, home: Path, prompt: str, *extra: str
                        ) -> subprocess.CompletedProcess[str]:
    codex_home = home / "codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    snippet = codex_snippet(pool.url, pool.engine.api_key).replace("supports_websockets = true\n", "")
    assert "supports_websockets" not in snippet
    (codex_home / "config.toml").write_text('model = "gpt-5.5"\n' + snippet, encoding="utf-8")
    return subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", *extra, prompt],
        cwd=home, env={**os.environ, "CODEX_HOME": str(codex_home)}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=180,
    )


def test_a_turn_that_moves_accounts_leaves_the_first_accounts_reasoning_behind(
    pool: Pool, codex: Path, tmp_path: Path
) -> None:
    # "a" answers with its reasoning and a tool call; when Codex sends the tool's output back (with
    # that reasoning in its context) "a" has hit its usage limit, so the request goes to "b".
    pool.upstream.script("a", replies.tool_call("exec_command", '{"cmd": "echo tool-ran"}'),
                         replies.usage_limit(resets_in=3600))
    pool.upstream.script("b", replies.ok("done"))
    done = run_codex_over_http(codex, pool, tmp_path, "run echo", "--sandbox", "danger-full-access")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "done"
    sent = pool.upstream.codex_requests()
    assert [r.account_id for r in sent] == ["a", "a", "b"] and {r.socket for r in sent} == {0}
    retried, moved = sent[1].body, sent[2].body
    assert isinstance(retried, dict) and isinstance(moved, dict)
    kinds = [item.get("type") for item in retried["input"]]
    assert "reasoning" in kinds and "function_call_output" in kinds  # Codex sent the reasoning back
    assert "reasoning" not in [item.get("type") for item in moved["input"]]
    assert "tool-ran" in json.dumps(moved["input"])  # the rest of the context went along
    assert pool.upstream.outcomes["foreign_reasoning"] == 0
