"""A running codex-pool proxy in front of the fake chatgpt.com, for the proxy's end-to-end tests.

``running_pool(["a", "b"])`` serves the fake backend + auth server on loopback, writes a config
pointing at it, stores one account per fake account id (priority in list order, the first is the
primary), starts a real :class:`tray.engine.Engine` on port 0 and yields a :class:`Pool`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import ServerThread, serving
from tests.fakes.upstream import FakeChatGPT, FakeUpstream, make_chatgpt, make_upstream, replies
from tray.engine import Engine
from tray.models import Account, Clock, Event, Identity
from tray.paths import resolve_paths
from tray.store.accounts import Store

DEFAULT_CONFIG: dict[str, Any] = {"dormant-touch": "disabled", "fast-mode": "disabled"}


def codex_body(**extra: Any) -> dict[str, Any]:
    """A request body shaped like Codex CLI 0.169.0's (see the reference samples)."""
    body: dict[str, Any] = {
        "model": "gpt-5.5",
        "stream": True,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
    }
    body.update(extra)
    return body


CODEX_HEADERS = {
    "version": "0.169.0",
    "originator": "codex_exec",
    "user-agent": "codex_exec/0.169.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.169.0)",
    "accept": "text/event-stream",
    "x-codex-beta-features": "remote_compaction_v2",
    "x-codex-window-id": "thread-1:0",
    "x-client-request-id": "thread-1",
}


@dataclass
class Pool:
    engine: Engine
    upstream: FakeUpstream
    auth: FakeAuth
    fake_server: ServerThread
    accounts: dict[str, Account]
    events: list[Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.engine.url

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.engine.api_key}"}
        headers.update(kwargs.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False, **kwargs)

    def post(self, path: str = "/backend-api/codex/responses", body: Any = None,
             headers: Mapping[str, str] | None = None) -> httpx.Response:
        with self.client() as client:
            return client.post(path, json=codex_body() if body is None else body,
                               headers={**CODEX_HEADERS, **(headers or {})})

    def served_by(self, response: httpx.Response) -> str | None:
        served: str | None = response.headers.get("x-fake-account")
        return served

    def account(self, fake_id: str) -> Account:
        """The stored account, once the writes queued by earlier answers are done."""
        self.wait_bookkeeping()
        found = self.engine.store.get(self.accounts[fake_id].id)
        assert found is not None
        return found

    def cooldown_until(self, fake_id: str) -> float | None:
        """The stored cooldown's end, once the writes queued by earlier answers are done."""
        self.wait_bookkeeping()
        cooling = self.engine.store.cooldowns(time.time()).get(self.accounts[fake_id].id)
        return None if cooling is None else cooling.until

    def prime_usage(self, *fake_ids: str) -> None:
        """Put each account's current fake usage in the quota cache, as a fresh fetch would."""
        for fid in fake_ids:
            payload = json.dumps(self.upstream.usage_of(fid))
            self.engine.store.put_usage(self.accounts[fid].id, payload, time.time())

    def wait_bookkeeping(self) -> None:
        """Let the background store writes after the last answer finish."""
        pipeline = self.engine.pipeline
        if pipeline is not None:
            self.engine.submit(pipeline.drain()).result(10)


def add_account(store: Store, auth: FakeAuth, upstream: FakeUpstream, fake_id: str,
                usage: Mapping[str, Any] | None = None, plan: str = "plus",
                expires_in: float = 3600) -> Account:
    user = FakeUser(account_id=fake_id, subject=f"user-{fake_id}", email=f"{fake_id}@example.com", plan=plan)
    tokens = auth.token_set(user, expires_in=expires_in)
    upstream.add_account(fake_id, tokens.access_token, plan_type=plan)
    if usage:
        upstream.set_usage(fake_id, **usage)
    return store.save_login(Identity(fake_id, user.subject), tokens, user.email, plan)


def write_config(home: Path, values: Mapping[str, Any]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(tomli_w.dumps(dict(values)), encoding="utf-8")


@contextmanager
def running_pool(
    fake_ids: Sequence[str] = ("a", "b"),
    *,
    config: Mapping[str, Any] | None = None,
    usage: Mapping[str, Mapping[str, Any]] | None = None,
    plans: Mapping[str, str] | None = None,
    upstream_timeout: httpx.Timeout | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    stop_timeout: float | None = None,
    clock: Clock | None = None,
    upstream_ping: float = 1.0,
) -> Iterator[Pool]:
    """``transport``: the engine's upstream transport (default httpx's, with the engine's limits);
    ``stop_timeout``: how long stopping the engine waits for requests in flight; ``clock`` (default
    ``time.time``) is the engine's and the fake backend's: a test that moves it moves both;
    ``upstream_ping``: seconds between the fake backend's WebSocket pings (and its pong timeout)."""
    chatgpt = make_chatgpt(make_upstream(clock=clock) if clock is not None else None)
    auth = chatgpt.auth
    assert isinstance(auth, FakeAuth)
    with serving(chatgpt.app, ping_interval=upstream_ping) as fake_server:
        home = Path(os.environ["CODEX_POOL_HOME"])
        values = {**DEFAULT_CONFIG, "upstream-url": f"{fake_server.url}/backend-api",
                  "auth-url": fake_server.url, **(config or {})}
        write_config(home, values)
        events: list[Event] = []
        extra: dict[str, Any] = {} if upstream_timeout is None else {"upstream_timeout": upstream_timeout}
        if transport is not None:
            extra["transport"] = transport
        if stop_timeout is not None:
            extra["stop_timeout"] = stop_timeout
        if clock is not None:
            extra["clock"] = clock
        engine = Engine(resolve_paths(), port=0, import_primary=False, events=events.append, **extra)
        accounts = {
            fid: add_account(engine.store, auth, chatgpt.upstream, fid, (usage or {}).get(fid),
                             (plans or {}).get(fid, "plus"))
            for fid in fake_ids
        }
        engine.start()
        try:
            yield Pool(engine, chatgpt.upstream, auth, fake_server, accounts, events)
        finally:
            engine.stop()


def sse_types(response: httpx.Response) -> list[str]:
    types = []
    for block in response.text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:"):
                with suppress(ValueError, KeyError, TypeError):
                    types.append(json.loads(line[5:].strip())["type"])
    return types


def message_text(final: Mapping[str, Any]) -> str:
    """The text of a final response object's message (the reasoning item comes ahead of it)."""
    [message] = [item for item in final["output"] if item.get("type") == "message"]
    return str(message["content"][0]["text"])


__all__ = ["CODEX_HEADERS", "Pool", "codex_body", "message_text", "replies", "running_pool", "sse_types",
           "write_lock_held"]


@contextmanager
def setup_pool(user: FakeUser, home: Path) -> Iterator[tuple[FakeChatGPT, str]]:
    """A codex-pool proxy for the client-setup tests: one pool account (``user``), a free port and
    the instance file written (``setup`` reads the running proxy's port from it), the user's HOME
    at ``home``. Yields the fake ChatGPT and that account's access token."""
    chatgpt = make_chatgpt()
    with serving(chatgpt.app) as server:
        paths = resolve_paths().ensure()
        paths.config_file.write_text(
            f'upstream-url = "{server.url}/backend-api"\nauth-url = "{server.url}"\nport = 0\n'
        )
        engine = Engine(paths, import_primary=False, environ={"HOME": str(home)})
        assert isinstance(chatgpt.auth, FakeAuth)
        tokens = chatgpt.auth.token_set(user)
        engine.store.save_login(Identity(user.account_id, user.subject), tokens, user.email, user.plan)
        engine.start()
        try:
            yield chatgpt, tokens.access_token
        finally:
            engine.stop()


# A second process (another codex-pool, a backup tool, sqlite3 on the file) holding the write lock.
_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``db``'s write lock (``BEGIN IMMEDIATE``) until the block ends."""
    with subprocess.Popen([sys.executable, "-c", _LOCKER, str(db)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline().strip() == "locked"
            yield holder
        finally:
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(10)
