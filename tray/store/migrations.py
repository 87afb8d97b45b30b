"""Numbered schema migrations for the pool database, tracked with ``PRAGMA user_version``.

Migration *n* takes a database at version *n-1* to version *n*. Each runs in its own transaction
together with the ``user_version`` bump, so a crash leaves the file at a whole version. Before an
existing database is migrated, a copy is written to the backup folder (the file holds tokens, so
the copy is 0600 like the original).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from tray.errors import StoreError

# Append new migrations at the end; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema.
    """
    CREATE TABLE accounts (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        chatgpt_account_id TEXT NOT NULL,
        subject            TEXT NOT NULL,
        email              TEXT,
        label              TEXT,
        plan               TEXT,
        priority           INTEGER NOT NULL,
        is_primary         INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
        state              TEXT NOT NULL DEFAULT 'enabled'
                           CHECK (state IN ('enabled', 'disabled', 'needs_login')),
        state_reason       TEXT,
        state_at           REAL,
        access_token       TEXT NOT NULL,
        refresh_token      TEXT NOT NULL,
        id_token           TEXT,
        expires_at         REAL NOT NULL,
        created_at         REAL NOT NULL,
        updated_at         REAL NOT NULL,
        UNIQUE (chatgpt_account_id, subject)
    );
    CREATE INDEX accounts_priority_idx ON accounts (priority);
    CREATE UNIQUE INDEX accounts_one_primary ON accounts (is_primary) WHERE is_primary = 1;

    CREATE TABLE cooldowns (
        account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        until      REAL NOT NULL,
        status     INTEGER NOT NULL,
        reason     TEXT NOT NULL,
        source     TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX cooldowns_until_idx ON cooldowns (until);

    CREATE TABLE quota_cache (
        account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        raw        TEXT NOT NULL,
        updated_at REAL NOT NULL
    );

    CREATE TABLE leases (
        key        TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        until      REAL NOT NULL,
        updated_at REAL NOT NULL
    );

    CREATE TABLE dormant_touches (
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        label      TEXT NOT NULL,
        until      REAL NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (account_id, label)
    );
    CREATE INDEX dormant_touches_until_idx ON dormant_touches (until);

    -- No foreign key: the activity view keeps decisions about accounts removed since.
    CREATE TABLE decisions (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at           REAL NOT NULL,
        account_id   INTEGER,
        account_name TEXT,
        reason       TEXT NOT NULL,
        scores       TEXT NOT NULL,
        fast_note    TEXT,
        cache_age    REAL,
        status       INTEGER,
        latency_ms   REAL,
        route        TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: the usage history (samples of each account's windows) and each window's latest sample.
    """
    CREATE TABLE usage_samples (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        window_seconds REAL NOT NULL,
        used_percent   REAL NOT NULL,
        reset_at       REAL,
        source         TEXT NOT NULL,
        at             REAL NOT NULL
    );
    CREATE INDEX usage_samples_at_idx ON usage_samples (at);
    CREATE INDEX usage_samples_window_idx ON usage_samples (account_id, window_seconds, at);

    CREATE TABLE usage_latest (
        account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        window_seconds REAL NOT NULL,
        used_percent   REAL NOT NULL,
        reset_at       REAL,
        source         TEXT NOT NULL,
        at             REAL NOT NULL,
        PRIMARY KEY (account_id, window_seconds)
    );
    """,
)

LATEST = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def backup(conn: sqlite3.Connection, db_path: Path, backup_dir: Path, version: int) -> Path:
    """Copy the live database (consistently, through SQLite's backup API) into ``backup_dir``."""
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = backup_dir / f"{db_path.stem}-v{version}-{stamp}.db"
    n = 1
    while target.exists():
        n += 1
        target = backup_dir / f"{db_path.stem}-v{version}-{stamp}-{n}.db"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    dest = sqlite3.connect(target)
    try:
        conn.backup(dest)
    finally:
        dest.close()
    os.chmod(target, 0o600)
    return target


def migrate(
    conn: sqlite3.Connection, db_path: Path, backup_dir: Path, steps: Sequence[str] = MIGRATIONS
) -> Path | None:
    """Bring ``conn`` (autocommit mode) to ``len(steps)``; return the backup written, if any.

    A database newer than this code is refused rather than guessed at.
    """
    version, latest = schema_version(conn), len(steps)
    if version > latest:
        raise StoreError(
            f"The pool file {db_path} was written by a newer codex-pool (schema {version}, this one "
            f"knows {latest}); upgrade codex-pool to use it"
        )
    if version == latest:
        return None
    copy = backup(conn, db_path, backup_dir, version) if _has_tables(conn) else None
    for number in range(version + 1, latest + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # A second process may have migrated while we waited for the write lock.
            if schema_version(conn) >= number:
                conn.execute("COMMIT")
                continue
            for statement in _statements(steps[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return copy


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    return int(row[0]) > 0


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit our transaction)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
