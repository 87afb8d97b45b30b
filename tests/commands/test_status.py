"""``codex-pool status [--json]``, with and without a running proxy."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tray.cli import main
from tray.engine import Engine
from tray.models import Identity
from tray.paths import api_key, resolve_paths
from tray.store.accounts import Store


def add_account(fake_id: str, used: float) -> None:
    paths = resolve_paths().ensure()
    user = FakeUser(account_id=fake_id, subject=f"u-{fake_id}", email=f"{fake_id}@x.org")
    tokens = FakeAuth().token_set(user)
    window = {"used_percent": used, "limit_window_seconds": 18000, "reset_after_seconds": 3600}
    payload = {"plan_type": "plus", "rate_limit": {"allowed": True, "limit_reached": False,
                                                   "primary_window": window}}
    with Store.open(paths.db_file) as store:
        account = store.save_login(Identity(fake_id, f"u-{fake_id}"), tokens, f"{fake_id}@x.org", "plus")
        store.put_usage(account.id, json.dumps(payload), time.time())


def status_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["status", "--json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_status_without_a_running_proxy(pool_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_account("a", 25.0)
    data = status_json(capsys)
    assert data["running"] is False
    assert data["proxy_url"] == "http://127.0.0.1:4455"
    assert data["api_key"] == api_key(resolve_paths())
    assert data["ui_url"] is None and data["port_holder"] is None  # only a running proxy makes codes
    accounts = data["accounts"]
    assert isinstance(accounts, list) and accounts[0]["email"] == "a@x.org"
    assert accounts[0]["quota"]["5h"]["used_percent"] == 25.0
    assert "access_token" not in json.dumps(data) and "eyJ" not in json.dumps(data)


def test_status_finds_the_running_proxy(pool_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Engine(resolve_paths(), port=0, import_primary=False) as engine:
        data = status_json(capsys)
        assert data["running"] is True
        assert data["proxy_url"] == engine.url
        assert str(data["ui_url"]).startswith(f"{engine.url}/ui/#code=cpc-")
        assert engine.ui_token not in json.dumps(data)
        assert main(["status"]) == 0
        text = capsys.readouterr().out
        assert engine.url in text and engine.api_key in text and "running" in text
        assert engine.ui_token not in text
