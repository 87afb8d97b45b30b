"""Fetching one account's usage from the fake backend over loopback."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import serving
from tests.fakes.upstream import make_chatgpt, replies
from tray.models import Account, AccountState, Identity, TokenSet
from tray.quota.fetcher import UsageFetchError, fetch_usage


def account(tokens: TokenSet, account_id: str = "a") -> Account:
    now = time.time()
    return Account(id=1, identity=Identity(account_id, "user-a"), email="a@example.com", label=None,
                   plan="plus", priority=0, primary=True, state=AccountState.ENABLED, state_reason=None,
                   state_at=None, tokens=tokens, created_at=now, updated_at=now)


def fetch(url: str, acct: Account, timeout: float = 5.0) -> tuple[str, dict[str, object]]:
    async def go() -> tuple[str, dict[str, object]]:
        async with httpx.AsyncClient() as http:
            return await fetch_usage(http, url, acct, timeout=timeout)

    return asyncio.run(go())


def test_fetch_sends_the_accounts_credentials_and_returns_the_payload() -> None:
    chatgpt = make_chatgpt()
    auth = chatgpt.auth
    assert isinstance(auth, FakeAuth)
    tokens = auth.token_set(FakeUser(account_id="a", subject="user-a"))
    chatgpt.upstream.add_account("a", tokens.access_token)
    chatgpt.upstream.set_usage("a", primary_used=12.0)
    with serving(chatgpt.app) as server:
        raw, payload = fetch(f"{server.url}/backend-api", account(tokens))
    assert payload["rate_limit"]["primary_window"]["used_percent"] == 12.0  # type: ignore[index]
    assert raw.startswith("{")
    request = chatgpt.upstream.requests[-1]
    assert request.path == "/backend-api/wham/usage"
    assert request.headers["chatgpt-account-id"] == "a" and request.account_id == "a"


def test_errors_are_converted_and_never_carry_the_token() -> None:
    chatgpt = make_chatgpt()
    auth = chatgpt.auth
    assert isinstance(auth, FakeAuth)
    tokens = auth.token_set(FakeUser(account_id="a", subject="user-a"))
    chatgpt.upstream.add_account("a", tokens.access_token)
    chatgpt.upstream.script_usage("a", replies.server_error(503), replies.slow(0.6))
    with serving(chatgpt.app) as server:
        with pytest.raises(UsageFetchError) as err:
            fetch(f"{server.url}/backend-api", account(tokens))
        assert err.value.status == 503 and tokens.access_token not in str(err.value)
        with pytest.raises(UsageFetchError, match="timed out"):
            fetch(f"{server.url}/backend-api", account(tokens), timeout=0.2)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UsageFetchError, match="ConnectError"):
        fetch(f"http://127.0.0.1:{port}/backend-api", account(tokens))
