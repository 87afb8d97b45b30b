"""The engine as the tray and ``serve`` use it: start/stop, instance file, UI and API mounts, first-start
import of the user's own login, config problems and live config changes."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from pathlib import Path

import httpx

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import serving
from tests.fakes.upstream import make_chatgpt
from tests.support.proxykit import DEFAULT_CONFIG, add_account, write_config
from tray.auth.files import codex_auth_path
from tray.engine import Engine
from tray.models import ConfigInvalid, Event
from tray.paths import resolve_paths


def test_start_writes_the_instance_file_and_stop_removes_it(pool_home: Path) -> None:
    engine = Engine(resolve_paths(), port=0, import_primary=False)
    url = engine.start()
    try:
        info_path = engine.paths.instance_file
        info = json.loads(info_path.read_text())
        assert info["url"] == url and engine.ui_token not in info_path.read_text()
        assert stat.S_IMODE(info_path.stat().st_mode) == 0o600
        assert engine.ui_url.startswith(f"{url}/ui/#code=cpc-") and engine.ui_token not in engine.ui_url
        assert engine.api_key.startswith("cp-") and engine.api_key != engine.ui_token

        async def on_loop() -> str:
            await asyncio.sleep(0)
            return "ran"

        assert engine.submit(on_loop()).result(5) == "ran"
    finally:
        engine.stop()
    assert not info_path.exists()


def test_ui_and_management_api_are_mounted(pool_home: Path) -> None:
    with Engine(resolve_paths(), port=0, import_primary=False) as engine, httpx.Client(
        base_url=engine.url, trust_env=False
    ) as client:
        page = client.get("/ui/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        foreign = client.get("/ui/", headers={"Host": "evil.example"})
        assert foreign.status_code == 403
        status = client.get("/api/status", headers={"Authorization": f"Bearer {engine.ui_token}"})
        assert status.status_code == 200
        assert status.json()["proxy_url"] == engine.url
        # The proxy key does not open the management API.
        wrong = client.get("/api/status", headers={"Authorization": f"Bearer {engine.api_key}"})
        assert wrong.status_code == 401


def test_first_start_imports_the_codex_login_when_the_pool_is_empty(pool_home: Path) -> None:
    auth = FakeAuth()
    tokens = auth.token_set(FakeUser(account_id="acc-own", subject="user-own", email="me@example.com"))
    path = codex_auth_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auth_mode": "chatgpt", "tokens": {
        "id_token": tokens.id_token, "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token, "account_id": "acc-own"}}))
    with Engine(resolve_paths(), port=0) as engine:
        accounts = engine.store.accounts()
        assert [a.email for a in accounts] == ["me@example.com"] and accounts[0].primary


def test_config_problems_are_reported_and_changes_apply_live(pool_home: Path) -> None:
    write_config(pool_home, {"fast-mode": "sometimes", "sticky-strength": -1})
    events: list[Event] = []
    with Engine(resolve_paths(), port=0, import_primary=False, events=events.append) as engine:
        invalid = [e for e in events if isinstance(e, ConfigInvalid)]
        assert len(invalid) == 1 and len(invalid[0].problems) == 2
        assert engine.config.fast_mode == "auto"  # the bad key fell back alone
        # Edited by hand while running: picked up without a restart.
        write_config(pool_home, {"fast-mode": "always"})
        deadline = time.monotonic() + 10
        while mode(engine) != "always" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mode(engine) == "always"


def mode(engine: Engine) -> str:
    return str(engine.config.fast_mode)


def test_stop_lets_an_in_flight_stream_finish() -> None:
    import threading

    from tests.support.proxykit import CODEX_HEADERS, codex_body, replies, running_pool

    with running_pool(["a"]) as pool:
        pool.upstream.script("a", replies.ok(deltas=20, event_delay=0.03))
        received: list[bytes] = []
        started = threading.Event()

        def read() -> None:
            with pool.client() as client, client.stream(
                "POST", "/backend-api/codex/responses", json=codex_body(), headers=CODEX_HEADERS
            ) as response:
                for chunk in response.iter_bytes():
                    received.append(chunk)
                    started.set()

        reader = threading.Thread(target=read)
        reader.start()
        assert started.wait(10)
        pool.engine.stop()
        reader.join(15)
        assert not reader.is_alive()
        assert b"response.completed" in b"".join(received)
        assert pool.upstream.open_streams == 0


def test_tokens_near_expiry_are_refreshed_without_any_request(pool_home: Path) -> None:
    chatgpt = make_chatgpt()
    auth = chatgpt.auth
    assert isinstance(auth, FakeAuth)
    with serving(chatgpt.app) as fake:
        write_config(pool_home, {**DEFAULT_CONFIG, "upstream-url": f"{fake.url}/backend-api",
                                 "auth-url": fake.url})
        engine = Engine(resolve_paths(), port=0, import_primary=False, refresh_interval=0.2)
        # 'due' was issued 3,400 s into a one-hour token: 200 s left, inside the 5 min lead time.
        auth.clock = lambda: time.time() - 3400
        due = add_account(engine.store, auth, chatgpt.upstream, "due")
        auth.clock = time.time
        fresh = add_account(engine.store, auth, chatgpt.upstream, "fresh")
        engine.start()
        try:
            # The fake counts the grant before the engine has committed the new tokens: wait for
            # the store to show them.
            def stored_token() -> str | None:
                row = engine.store.get(due.id)
                return None if row is None else row.tokens.access_token

            deadline = time.monotonic() + 30
            while stored_token() == due.tokens.access_token and time.monotonic() < deadline:
                time.sleep(0.05)
            assert auth.refresh_grants == 1
            assert chatgpt.upstream.codex_requests() == []  # no client asked for anything
            renewed, untouched = engine.store.get(due.id), engine.store.get(fresh.id)
            assert renewed is not None and untouched is not None
            assert renewed.tokens.access_token != due.tokens.access_token
            assert renewed.tokens.expires_at > time.time() + 3000
            assert untouched.tokens == fresh.tokens
            # Another pass finds nothing due.
            assert engine.refresher is not None
            again = engine.refresher.refresh_due_accounts(engine.store.accounts(include_inactive=False))
            assert engine.submit(again).result(10) == 0
            assert auth.refresh_grants == 1 and auth.reuse_attempts == 0
        finally:
            engine.stop()
