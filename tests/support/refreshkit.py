"""Helpers for the token refresh tests: the fake auth server on loopback, a pool file, accounts
with tokens of a chosen age, and a refresher run to its end (drained like the engine drains it).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.auth_server import FakeAuth, FakeUser
from tray.auth.files import PrimarySync, codex_auth_path
from tray.auth.oauth import OAuthClient
from tray.auth.refresh import Refresher
from tray.models import Account, Event, Identity, TokenSet
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]
ALICE = FakeUser("acc-a", "alice", "alice@example.com", "pro")
BOB = FakeUser("acc-b", "bob", "bob@example.com", "plus")


def add(
    store: Store, fake: FakeAuth, user: FakeUser = ALICE, expires_in: float = -10, issued_ago: float = 0
) -> Account:
    identity = Identity(user.account_id, user.subject)
    fake.clock = lambda: time.time() - issued_ago
    try:
        tokens = fake.token_set(user, expires_in)
    finally:
        fake.clock = time.time
    return store.save_login(identity, tokens, user.email, user.plan)


def refreshing(
    store: Store,
    url: str,
    action: Callable[[Refresher], Awaitable[Any]],
    *,
    sync: PrimarySync | None = None,
    events: list[Event] | None = None,
    timeout: float = 5.0,
    **options: Any,
) -> Any:
    """Run ``action`` with a refresher, then drain it before the HTTP client closes (as the engine
    does when it stops). Callers wait for a refresh they need up to 30 s unless ``request_wait``
    says otherwise (the protocol tests are not about failing over)."""
    options.setdefault("request_wait", 30.0)

    async def go() -> Any:
        async with httpx.AsyncClient() as http:
            oauth = OAuthClient(http, url, time.time, timeout=timeout)
            sink = events.append if events is not None else None
            refresher = Refresher(store, oauth, sync, time.time, sink, poll_interval=0.02, **options)
            try:
                return await action(refresher)
            finally:
                await refresher.drain()

    return asyncio.run(go())


async def until(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def stored(store: Store, account: Account) -> Account:
    row = store.get(account.id)
    assert row is not None
    return row


def same(a: TokenSet, b: TokenSet) -> bool:
    """Token comparisons go through here so a failing assert never prints a token."""
    return a == b


def renewed(a: Account, b: Account) -> bool:
    return a.tokens.access_token != b.tokens.access_token


def live(fake: FakeAuth, account: Account) -> bool:
    """Whether the account's refresh token would still be honoured by the token endpoint."""
    return account.tokens.refresh_token in fake.live


def write_codex_file(fake: FakeAuth, user: FakeUser, expires_in: float) -> tuple[Path, Any]:
    tokens = fake.token_set(user, expires_in)
    path = codex_auth_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": None,
        "last_refresh": "2026-01-01T00:00:00Z",
        "tokens": {
            "id_token": tokens.id_token,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "account_id": user.account_id,
        },
    }
    path.write_text(json.dumps(body))
    return path, tokens


def worker(db: Path, url: str, account_id: int, callers: int, go: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.refresh_worker",
            str(db),
            url,
            str(account_id),
            str(callers),
            str(go),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        text=True,
    )
