"""The log file: where it is, who may read it, rotation, and secrets masked on every handler."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.jwt import account_claims, make_jwt
from tray import logs
from tray.paths import Paths, resolve_paths

JWT = make_jwt(account_claims("acc-a"))
KEY = "cp-Zq3vX9_kP2-mW8rT5yL1nB4cD7fG0hJ6sA"
UI_TOKEN = "cpui-Hk2Lm9Np4Qr7St1Uv5Wx8Yz3Ab6Cd0Ef"
REFRESH = "rt_17_Xk9mQ2pL7vR4tN8wB3yH"
OPAQUE = "sk-opaque-access-value-123"
SECRETS = (JWT, KEY, UI_TOKEN, REFRESH, OPAQUE, "s3cr3t-bearer-value")


@pytest.fixture
def paths(pool_home: Path) -> Iterator[Paths]:
    root, tray = logging.getLogger(), logging.getLogger("tray")
    levels = root.level, tray.level
    yield resolve_paths()
    logs.teardown()
    root.setLevel(levels[0])
    tray.setLevel(levels[1])


def read(paths: Paths) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return paths.log_file.read_text(encoding="utf-8")


def test_secrets_are_masked_in_the_file_and_on_stderr(
    paths: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs.setup(paths, "debug", stderr_level=logging.NOTSET) == paths.log_file
    log = logging.getLogger("tray.test")
    log.info("upstream said: Authorization: Bearer s3cr3t-bearer-value for %s", "alice@example.com")
    log.warning("token answer %s", f'{{"access_token": "{OPAQUE}", "refresh_token": "{REFRESH}", '
                                   f'"id_token": "{JWT}"}}')
    log.error("clients use %s; the window opens http://127.0.0.1:4455/ui/#token=%s", KEY, UI_TOKEN)
    log.debug("form body grant_type=refresh_token&refresh_token=%s&client_id=app_x", REFRESH)
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        log.exception("refresh failed")
    text = read(paths)
    err = capsys.readouterr().err
    for output in (text, err):
        for secret in SECRETS:
            assert secret not in output
        assert "alice@example.com" in output and "client_id=app_x" in output  # the rest is kept
        assert "Bearer [redacted]" in output and "cp-[redacted]" in output and "cpui-[redacted]" in output
        assert '"access_token": "[redacted]"' in output and "ValueError: bad token [redacted]" in output
    assert text.count("\n") >= 5


def test_the_file_is_private_and_rotates(paths: Paths) -> None:
    old = os.umask(0)
    try:
        logs.setup(paths, "info", max_bytes=2_000, backups=2)
        log = logging.getLogger("tray.test")
        for i in range(100):
            log.info("line %d %s", i, "x" * 60)
    finally:
        os.umask(old)
    read(paths)
    assert stat.S_IMODE(paths.log_dir.stat().st_mode) == 0o700
    files = sorted(paths.log_dir.glob("codex-pool.log*"))
    assert [f.name for f in files] == ["codex-pool.log", "codex-pool.log.1", "codex-pool.log.2"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert all(f.stat().st_size <= 2_100 for f in files)


def test_an_existing_loose_file_is_made_private(paths: Paths) -> None:
    paths.log_dir.mkdir(parents=True)
    paths.log_file.write_text("old\n")
    paths.log_file.chmod(0o644)
    logs.setup(paths, "info")
    assert stat.S_IMODE(paths.log_file.stat().st_mode) == 0o600
    assert read(paths).startswith("old\n")


def test_level_and_other_libraries(paths: Paths) -> None:
    logs.setup(paths, "warning")
    logging.getLogger("tray.test").info("quiet info")
    logging.getLogger("tray.test").warning("loud warning")
    logging.getLogger("somelib").info("library chatter")
    text = read(paths)
    assert "loud warning" in text and "quiet info" not in text and "library chatter" not in text


def test_setup_twice_replaces_its_handlers(paths: Paths) -> None:
    logs.setup(paths, "info")
    logs.setup(paths, "info")
    logging.getLogger("tray.test").info("once")
    assert read(paths).count("once") == 1


def test_an_unwritable_log_folder_is_one_line_and_not_fatal(
    paths: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    paths.log_dir.parent.mkdir(parents=True, exist_ok=True)
    paths.log_dir.write_text("a file where the folder should be")
    assert logs.setup(paths, "info", stderr_level=logging.WARNING) is None
    logging.getLogger("tray.test").warning("still logged")
    err = capsys.readouterr().err
    assert "cannot write the log file" in err and "still logged" in err


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "POST /backend-api/codex/responses -> 200 via tcp-proxy (alice@example.com, 5h window 40 %)"
    assert logs.redact(text) == text
