"""Schema migrations: numbered by user_version, a backup before touching an existing database."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
from pathlib import Path

from tray.models import Identity, TokenSet
from tray.store import migrations
from tray.store.accounts import Store


def test_a_new_file_is_created_at_the_latest_version_without_a_backup(tmp_path: Path) -> None:
    with Store.open(tmp_path / "pool.db") as store:
        assert store._read("PRAGMA user_version")[0][0] == migrations.LATEST
        assert store.backup_made is None
    assert not (tmp_path / "backups").exists()


def test_migrating_an_existing_database_backs_it_up_first(tmp_path: Path) -> None:
    path = tmp_path / "pool.db"
    with Store.open(path) as store:
        store.save_login(Identity("a", "u"), TokenSet("at", "rt", None, 1.0), "a@example.com", None)
    newer = (*migrations.MIGRATIONS, "ALTER TABLE accounts ADD COLUMN note TEXT;")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        copy = migrations.migrate(conn, path, tmp_path / "backups", steps=newer)
        assert migrations.schema_version(conn) == len(newer)
        assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(accounts)")]
    finally:
        conn.close()
    assert copy is not None and copy.parent == tmp_path / "backups"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    old = sqlite3.connect(copy)
    try:
        assert migrations.schema_version(old) == migrations.LATEST
        assert old.execute("SELECT email FROM accounts").fetchall() == [("a@example.com",)]
    finally:
        old.close()


def test_an_older_file_opened_by_the_store_gets_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "pool.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE legacy (x INTEGER)")  # a version-0 file that already holds data
    conn.execute("INSERT INTO legacy VALUES (7)")
    conn.commit()
    conn.close()
    with Store.open(path, backup_dir=tmp_path / "saved") as store:
        assert store.backup_made is not None and store.backup_made.parent == tmp_path / "saved"
        assert store.accounts() == []
    copy = sqlite3.connect(store.backup_made)
    try:
        assert copy.execute("SELECT x FROM legacy").fetchall() == [(7,)]
    finally:
        copy.close()


def test_a_failed_migration_leaves_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "pool.db"
    Store.open(path).close()
    broken = (*migrations.MIGRATIONS, "ALTER TABLE nowhere ADD COLUMN x TEXT;")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with contextlib.suppress(sqlite3.OperationalError):
            migrations.migrate(conn, path, tmp_path / "backups", steps=broken)
        assert migrations.schema_version(conn) == migrations.LATEST
    finally:
        conn.close()
