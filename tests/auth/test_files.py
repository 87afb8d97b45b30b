from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.support.tools import CODEX_VERSIONS, codex_cli
from tray.auth.files import (
    PrimarySync,
    codex_auth_path,
    import_primary,
    opencode_auth_path,
    read_codex,
)
from tray.errors import AuthFileError
from tray.models import Identity, TokenSet
from tray.store.accounts import Store

ALICE = FakeUser("acc-a", "alice", "alice@example.com", "pro")
BOB = FakeUser("acc-b", "bob", "bob@example.com", "plus")


@pytest.fixture
def store(pool_home: Path) -> Iterator[Store]:
    db = Store.open(pool_home / "pool.db", time.time)
    yield db
    db.close()


def write_codex(tokens: TokenSet, account_id: str, mode: int = 0o600) -> Path:
    path = codex_auth_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "OPENAI_API_KEY": None,
        "auth_mode": "chatgpt",
        "tokens": {
            "id_token": tokens.id_token,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "account_id": account_id,
        },
        "last_refresh": "2026-11-20T10:00:00.123456789Z",
        "x_other_field": {"kept": True},
    }
    path.write_text(json.dumps(data, indent=2))
    path.chmod(mode)
    return path


def write_opencode(tokens: TokenSet, account_id: str, mode: int = 0o600) -> Path:
    path = opencode_auth_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "anthropic": {"type": "api", "key": "sk-other"},
        "openai": {
            "type": "oauth",
            "refresh": tokens.refresh_token,
            "access": tokens.access_token,
            "expires": int(tokens.expires_at * 1000),
            "accountId": account_id,
            "enterpriseUrl": "kept",
        },
    }
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


def test_first_start_imports_the_codex_login_as_primary(store: Store) -> None:
    tokens = FakeAuth().token_set(ALICE)
    write_codex(tokens, ALICE.account_id)
    account = import_primary(store, time.time)
    assert account is not None and account.primary
    assert account.identity == Identity("acc-a", "alice")
    assert (account.email, account.plan) == ("alice@example.com", "pro")
    assert account.tokens.refresh_token == tokens.refresh_token
    assert import_primary(store, time.time) is None  # pool no longer empty: nothing imported again
    assert len(store.accounts()) == 1


def test_opencode_login_without_id_token_is_imported(store: Store) -> None:
    tokens = FakeAuth().token_set(BOB)
    write_opencode(tokens, BOB.account_id)
    account = import_primary(store, time.time)
    assert account is not None
    assert account.identity == Identity("acc-b", "bob") and account.email == "bob@example.com"
    assert account.tokens.expires_at == pytest.approx(tokens.expires_at, abs=1)


def test_the_newer_of_the_two_files_wins(store: Store) -> None:
    fake = FakeAuth()
    older, newer = fake.token_set(ALICE, expires_in=600), fake.token_set(ALICE, expires_in=3600)
    write_codex(older, ALICE.account_id)
    write_opencode(newer, ALICE.account_id)
    account = import_primary(store, time.time)
    assert account is not None and account.tokens.refresh_token == newer.refresh_token


def test_malformed_file_is_reported_untouched_and_the_other_still_imports(store: Store) -> None:
    path = codex_auth_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(AuthFileError, match=str(path)):
        read_codex(path)
    write_opencode(FakeAuth().token_set(BOB), BOB.account_id)
    assert import_primary(store, time.time) is not None
    assert path.read_text() == "{not json"


def test_api_key_login_and_missing_files_import_nothing(store: Store) -> None:
    assert import_primary(store, time.time) is None
    path = codex_auth_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-x"}))
    assert import_primary(store, time.time) is None
    assert store.accounts() == []


def test_write_back_keeps_other_fields_and_mode_and_skips_other_identities(store: Store) -> None:
    fake = FakeAuth()
    old = fake.token_set(ALICE)
    codex = write_codex(old, ALICE.account_id, mode=0o640)
    opencode = write_opencode(fake.token_set(BOB, expires_in=600), BOB.account_id)
    opencode_before = opencode.read_text()
    account = import_primary(store, time.time)
    assert account is not None
    new = fake.token_set(ALICE)
    assert store.update_tokens(account.id, new, expected_refresh_token=old.refresh_token)
    refreshed = store.get(account.id)
    assert refreshed is not None
    assert PrimarySync(store, time.time).write_back(refreshed) == [codex]
    data = json.loads(codex.read_text())
    assert data["tokens"]["refresh_token"] == new.refresh_token
    assert data["tokens"]["access_token"] == new.access_token
    assert data["tokens"]["id_token"] == new.id_token
    assert data["x_other_field"] == {"kept": True} and data["OPENAI_API_KEY"] is None
    assert data["last_refresh"] != "2026-11-20T10:00:00.123456789Z"
    assert stat.S_IMODE(codex.stat().st_mode) == 0o640
    assert opencode.read_text() == opencode_before  # Bob's login is not ours to touch
    assert sorted(os.listdir(codex.parent)) == ["auth.json"]  # no temp files left behind


def test_write_back_into_opencode_keeps_other_providers(store: Store) -> None:
    fake = FakeAuth()
    old = fake.token_set(BOB)
    path = write_opencode(old, BOB.account_id)
    account = import_primary(store, time.time)
    assert account is not None
    new = fake.token_set(BOB)
    store.update_tokens(account.id, new, expected_refresh_token=old.refresh_token)
    refreshed = store.get(account.id)
    assert refreshed is not None
    PrimarySync(store, time.time).write_back(refreshed)
    data = json.loads(path.read_text())
    assert data["anthropic"] == {"type": "api", "key": "sk-other"}
    assert data["openai"]["refresh"] == new.refresh_token
    assert data["openai"]["expires"] == int(new.expires_at * 1000)
    assert data["openai"]["enterpriseUrl"] == "kept" and data["openai"]["accountId"] == "acc-b"


def test_adopt_newer_takes_tokens_another_client_refreshed(store: Store) -> None:
    fake = FakeAuth()
    ours = fake.token_set(ALICE, expires_in=600)
    write_codex(ours, ALICE.account_id)
    account = import_primary(store, time.time)
    assert account is not None
    theirs = fake.token_set(ALICE, expires_in=3600)  # Codex CLI refreshed meanwhile
    write_codex(theirs, ALICE.account_id)
    adopted = PrimarySync(store, time.time).adopt_newer(account)
    assert adopted.tokens.refresh_token == theirs.refresh_token
    stored = store.get(account.id)
    assert stored is not None and stored.tokens.refresh_token == theirs.refresh_token


def test_adopt_newer_ignores_older_files_and_write_back_never_overwrites_newer(store: Store) -> None:
    fake = FakeAuth()
    current = fake.token_set(ALICE, expires_in=3600)
    write_codex(current, ALICE.account_id)
    account = import_primary(store, time.time)
    assert account is not None
    stale = fake.token_set(ALICE, expires_in=60)
    path = write_codex(stale, ALICE.account_id)
    sync = PrimarySync(store, time.time)
    assert sync.adopt_newer(account).tokens.refresh_token == current.refresh_token
    newer_elsewhere = fake.token_set(ALICE, expires_in=7200)
    write_codex(newer_elsewhere, ALICE.account_id)
    before = path.read_text()
    assert sync.write_back(account) == []
    assert path.read_text() == before


def test_malformed_file_is_not_written_back(store: Store) -> None:
    fake = FakeAuth()
    write_opencode(fake.token_set(BOB), BOB.account_id)
    account = import_primary(store, time.time)
    assert account is not None
    path = codex_auth_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"tokens": 5}')
    with pytest.raises(AuthFileError, match="tokens"):
        PrimarySync(store, time.time).write_back(account)
    assert path.read_text() == '{"tokens": 5}'


@pytest.mark.clients
@pytest.mark.parametrize("version", CODEX_VERSIONS, ids=lambda version: f"codex-{version}")
def test_real_codex_cli_still_reads_the_file_after_write_back(
    store: Store, isolated_home: Path, version: str
) -> None:
    codex = codex_cli(version)
    fake = FakeAuth()
    old = fake.token_set(ALICE)
    path = write_codex(old, ALICE.account_id)
    account = import_primary(store, time.time)
    assert account is not None
    store.update_tokens(account.id, fake.token_set(ALICE), expected_refresh_token=old.refresh_token)
    refreshed = store.get(account.id)
    assert refreshed is not None and PrimarySync(store, time.time).write_back(refreshed) == [path]
    done = subprocess.run(
        [str(codex), "login", "status"],
        env={**os.environ, "CODEX_HOME": str(path.parent), "HOME": str(isolated_home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Logged in using ChatGPT" in done.stdout + done.stderr


@pytest.mark.parametrize("expires", ["NaN", "Infinity", '"soon"', "true", "null"])
def test_odd_opencode_expiry_falls_back_to_the_token(store: Store, expires: str) -> None:
    tokens = FakeAuth().token_set(BOB)
    path = write_opencode(tokens, BOB.account_id)
    path.write_text(path.read_text().replace(str(int(tokens.expires_at * 1000)), expires))
    account = import_primary(store, time.time)
    assert account is not None
    assert account.tokens.expires_at == pytest.approx(tokens.expires_at, abs=1)


def test_a_codex_login_in_the_keyring_is_said_not_silently_skipped(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Codex CLI with cli_auth_credentials_store = "keyring" writes no auth.json: the first start
    imports nothing and says why and what to do instead."""
    codex_home = Path(os.environ["CODEX_HOME"])
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text('model = "gpt-5"\ncli_auth_credentials_store = "keyring"\n')
    with caplog.at_level("WARNING", logger="tray.auth.files"):
        assert import_primary(store, time.time) is None
    assert "system keyring" in caplog.text and "codex-pool login" in caplog.text
    (codex_home / "config.toml").write_text('cli_auth_credentials_store = "file"\n')
    caplog.clear()
    with caplog.at_level("WARNING", logger="tray.auth.files"):
        assert import_primary(store, time.time) is None
    assert caplog.text == ""


def test_windows_finds_the_clients_files_under_userprofile_not_a_posix_home() -> None:
    """Git Bash sets HOME=/c/Users/ann on Windows; Codex CLI and opencode use %USERPROFILE%."""
    from tray.paths import user_home

    environ = {"HOME": "/c/Users/ann", "USERPROFILE": r"C:\Users\ann"}
    assert user_home(environ, "win32") == Path(r"C:\Users\ann")
    assert user_home(environ, "linux") == Path("/c/Users/ann")
