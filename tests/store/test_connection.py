"""Opening the pool file: pragmas, a busy file, a damaged file, a newer schema."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tray.errors import StoreCorruptError, StoreError, StoreLockedError
from tray.models import Identity, TokenSet
from tray.store.accounts import Store


def test_pragmas(tmp_path: Path) -> None:
    with Store.open(tmp_path / "pool.db") as store:
        read = store._read
        assert read("PRAGMA journal_mode")[0][0] == "wal"
        assert read("PRAGMA foreign_keys")[0][0] == 1
        assert read("PRAGMA synchronous")[0][0] == 1  # NORMAL
        assert read("PRAGMA busy_timeout")[0][0] == 5000


def test_a_write_lock_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "pool.db"
    store = Store.open(path, busy_timeout=0.2)
    tokens = TokenSet("access-secret", "refresh-secret", None, 1.0)
    account = store.save_login(Identity("a", "u"), tokens, "a@example.com", None)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sqlite3, sys\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "conn.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "conn.execute('COMMIT')\n"
        ), str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError) as caught:
            store.set_label(account.id, "Work")
        message = str(caught.value)
        assert "busy" in message and "another codex-pool process" in message and str(path) in message
        assert "secret" not in message
        assert store.get(account.id) == account  # readers still work under WAL; nothing changed
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    assert store.set_label(account.id, "Work").label == "Work"  # usable again once released
    store.close()


def test_a_damaged_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "data" / "pool.db"
    path.parent.mkdir()
    garbage = b"this is not a database, it is a shopping list\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreCorruptError) as caught:
        Store.open(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in path.parent.iterdir()) == ["pool.db"]


def test_a_database_from_a_newer_codex_pool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pool.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer codex-pool"):
        Store.open(path)


def test_an_unwritable_folder_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="Could not create the pool file"):
        Store.open(blocker / "pool.db")


def test_damage_in_the_activity_table_is_reported_at_open_and_the_pool_still_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "pool.db"
    store = Store.open(path)
    with store.atomic() as db:
        for i in range(300):
            db.execute("INSERT INTO decisions (at, reason, scores) VALUES (?, ?, '[]')", (i, "x" * 200))
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'decisions'").fetchone()[0])
    conn.close()
    with path.open("r+b") as f:
        f.seek(4096 * (page - 1))
        f.write(b"\xff" * 512)
    damaged = path.read_bytes()

    with caplog.at_level("WARNING", logger="tray.store.connection"):
        reopened = Store.open(path)  # accounts intact: the pool keeps serving
    assert reopened.accounts() == []
    reopened.close()

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(path) in w and "damaged" in w for w in warnings), warnings
    assert path.read_bytes()[:len(damaged)] == damaged  # nothing repaired or deleted


def test_a_sound_file_opens_without_a_damage_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Store.open(tmp_path / "pool.db").close()
    with caplog.at_level("WARNING", logger="tray.store.connection"):
        Store.open(tmp_path / "pool.db").close()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
