"""``codex-pool setup codex|opencode [--undo]``: real files under the isolated HOME."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.auth_server import FakeUser
from tests.fakes.upstream import FakeChatGPT
from tests.support.proxykit import setup_pool
from tests.support.tools import CODEX_VERSIONS, codex_cli
from tray.cli import main
from tray.clients import files as clients
from tray.errors import ClientSetupError
from tray.paths import api_key, resolve_paths

URL = "http://127.0.0.1:4455"

CODEX_TOML = b"""# keep this comment
model = "gpt-5.5"
model_provider = "openai"

[profiles.fast]
model = "o4-mini"   # and this one
"""


@pytest.fixture
def codex_file(isolated_home: Path) -> Path:
    path = Path(os.environ["CODEX_HOME"]) / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_bytes(CODEX_TOML)
    path.chmod(0o644)
    return path


def test_setup_codex_then_undo_restores_the_exact_bytes(
    codex_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["setup", "codex"]) == 0
    out = capsys.readouterr().out
    assert f"Updated {codex_file}" in out and "/backend-api/codex" in out
    key = api_key(resolve_paths())
    assert key not in out  # the key goes into the file, not onto the terminal
    data = tomllib.loads(codex_file.read_text())
    assert data["model_provider"] == "codex-pool"
    assert data["model_providers"]["codex-pool"]["experimental_bearer_token"] == key
    assert data["model_providers"]["codex-pool"]["supports_websockets"] is True
    assert data["profiles"]["fast"]["model"] == "o4-mini"
    assert "# and this one" in codex_file.read_text()
    assert stat.S_IMODE(codex_file.stat().st_mode) == 0o600  # it holds the key now
    assert clients.is_applied("codex") and clients.is_applied("codex", URL)

    assert main(["setup", "codex"]) == 0  # a second run changes nothing and keeps the first copy
    assert "nothing changed" in capsys.readouterr().out

    assert main(["setup", "codex", "--undo"]) == 0
    assert "Restored" in capsys.readouterr().out
    assert codex_file.read_bytes() == CODEX_TOML
    assert stat.S_IMODE(codex_file.stat().st_mode) == 0o644
    assert not clients.is_applied("codex")
    assert list(resolve_paths().backup_dir.iterdir()) == []


def test_setup_creates_a_missing_file_and_undo_removes_it(isolated_home: Path) -> None:
    path = clients.config_path("codex")
    assert not path.exists()
    result = clients.apply("codex", URL, "cp-k")
    assert result.changed and result.backup is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the local key
    clients.undo("codex")
    assert not path.exists()


def test_undo_after_the_user_edited_the_file_keeps_their_edit(codex_file: Path) -> None:
    clients.apply("codex", URL, "cp-k")
    codex_file.write_text(codex_file.read_text().replace('model = "gpt-5.5"', 'model = "o3"'))
    result = clients.undo("codex")
    assert result.changed and result.backup is not None
    assert result.backup.read_bytes() == CODEX_TOML
    assert codex_file.read_bytes() == CODEX_TOML.replace(b'model = "gpt-5.5"', b'model = "o3"')
    assert any("changed after setup" in note for note in result.notes)


def test_undo_with_nothing_set_up_changes_nothing(codex_file: Path) -> None:
    result = clients.undo("codex")
    assert not result.changed and "nothing to undo" in result.message
    assert codex_file.read_bytes() == CODEX_TOML


def test_broken_codex_file_is_a_clear_error_and_nothing_changes(
    codex_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    codex_file.write_bytes(b"model = [unclosed\n")
    assert main(["setup", "codex"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("codex-pool: ") and "not valid TOML" in err and len(err.strip().splitlines()) == 1
    assert codex_file.read_bytes() == b"model = [unclosed\n"
    assert not resolve_paths().backup_dir.exists() or list(resolve_paths().backup_dir.iterdir()) == []


def test_unwritable_config_folder_is_a_clear_error(codex_file: Path) -> None:
    if os.geteuid() == 0:
        blocker = codex_file.parent
        codex_file.unlink()
        blocker.rmdir()
        blocker.write_text("a file where the folder should be")  # root ignores permissions; this still fails
    else:
        codex_file.parent.chmod(0o500)
    try:
        with pytest.raises(ClientSetupError, match="Could not"):
            clients.apply("codex", URL, "cp-k")
    finally:
        if codex_file.parent.is_dir():
            codex_file.parent.chmod(0o700)


def test_symlinked_config_stays_a_symlink(isolated_home: Path) -> None:
    real = isolated_home / "dotfiles" / "codex.toml"
    real.parent.mkdir()
    real.write_bytes(CODEX_TOML)
    link = clients.config_path("codex")
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    clients.apply("codex", URL, "cp-k")
    assert link.is_symlink() and clients.is_applied("codex")
    clients.undo("codex")
    assert link.is_symlink() and real.read_bytes() == CODEX_TOML


OPENCODE_JSON = b'{\n  "model": "openai/gpt-5.5",\n  "provider": {"openai": {"options": {"timeout": 1}}}\n}\n'


def test_setup_opencode_then_undo(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = clients.config_path("opencode")
    assert path == isolated_home / ".config" / "opencode" / "opencode.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(OPENCODE_JSON)
    assert main(["setup", "opencode"]) == 0
    assert "baseURL" in capsys.readouterr().out
    options = json.loads(path.read_text())["provider"]["openai"]["options"]
    assert options == {
        "timeout": 1,
        "baseURL": "http://127.0.0.1:4455/v1",
        "apiKey": api_key(resolve_paths()),
    }
    assert main(["setup", "opencode", "--undo"]) == 0
    assert path.read_bytes() == OPENCODE_JSON


def test_opencode_chatgpt_login_is_pointed_out(isolated_home: Path) -> None:
    auth = clients.opencode_auth_path()
    auth.parent.mkdir(parents=True)
    auth.write_text(json.dumps({"openai": {"type": "oauth", "refresh": "r", "access": "a", "expires": 1}}))
    result = clients.apply("opencode", URL, "cp-k")
    assert any("opencode auth logout" in note and str(auth) in note for note in result.notes)


def test_print_shows_the_settings_and_changes_nothing(
    isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["setup", "opencode", "--print"]) == 0
    shown = capsys.readouterr().out
    assert '"baseURL": "http://127.0.0.1:' in shown
    assert not clients.config_path("opencode").exists()


def test_setup_uses_the_configured_port(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = resolve_paths().ensure()
    paths.config_file.write_text("port = 4999\n")
    assert main(["setup", "codex"]) == 0
    base = tomllib.loads(clients.config_path("codex").read_text())["model_providers"]["codex-pool"][
        "base_url"
    ]
    assert base == "http://127.0.0.1:4999/backend-api/codex"


def test_port_zero_without_a_running_proxy_is_a_clear_error(
    isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resolve_paths().ensure().config_file.write_text("port = 0\n")
    assert main(["setup", "codex"]) == 1
    assert "start codex-pool first" in capsys.readouterr().err
    assert not clients.config_path("codex").exists()


# ---------------------------------------------------------------- the real Codex CLI

USER = FakeUser(account_id="acc-setup-1", subject="user-setup-1", email="setup@example.com")


@pytest.fixture
def running_pool(pool_home: Path, isolated_home: Path) -> Iterator[FakeChatGPT]:
    """A codex-pool proxy (on a free port, instance file written) in front of the fake ChatGPT."""
    with setup_pool(USER, isolated_home) as (chatgpt, _token):
        yield chatgpt


@pytest.mark.clients
@pytest.mark.timeout(180)
@pytest.mark.parametrize("version", CODEX_VERSIONS, ids=lambda version: f"codex-{version}")
def test_codex_exec_goes_through_the_pool_after_setup_and_undo_restores_the_file(
    running_pool: FakeChatGPT, codex_file: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str],
    version: str,
) -> None:
    codex = codex_cli(version)
    assert main(["setup", "codex"]) == 0
    capsys.readouterr()
    done = subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", "say hi"],
        cwd=isolated_home,
        env={**os.environ, "CODEX_HOME": str(codex_file.parent)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"Hi from {USER.account_id}!"
    sent = running_pool.upstream.codex_requests()
    assert sent and all(r.over_websocket for r in sent)  # setup turns the Responses WebSocket on
    request = sent[-1]
    assert request.headers["chatgpt-account-id"] == USER.account_id
    assert request.headers["originator"] == "codex_exec"

    assert main(["setup", "codex", "--undo"]) == 0
    assert codex_file.read_bytes() == CODEX_TOML
