"""The SQLite connection under :class:`tray.store.accounts.Store`: opening, pragmas, migrations,
transactions, and translating sqlite3 errors into the project's store errors.

Threads: a :class:`Database` owns **one** connection opened with ``check_same_thread=False``;
every call takes the instance's re-entrant lock, so the proxy's event loop, ``asyncio.to_thread``
workers and the GUI thread can share one instance. Calls are short and never wait on the network
while holding the lock. Other processes coordinate through SQLite's own file locking.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from tray.errors import StoreCorruptError, StoreError, StoreLockedError
from tray.models import Clock
from tray.store import migrations

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


class Database:
    """One connection to the pool file; create with :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock) -> None:
        self._conn = conn
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0  # atomic() nesting (guarded by _lock)
        self.backup_made: Path | None = None
        self.damage: str | None = None  # what ``PRAGMA quick_check`` found at open (None: nothing)

    @classmethod
    def open(
        cls,
        path: Path | str,
        clock: Clock = time.time,
        *,
        busy_timeout: float = 5.0,
        backup_dir: Path | None = None,
    ) -> Self:
        """Open (creating and migrating as needed) the pool file at ``path``.

        WAL, ``synchronous=NORMAL``, foreign keys, ``busy_timeout`` (seconds). The folder is made
        0700 and the file 0600 (SQLite gives its -wal/-shm files the same mode). Before an existing
        database is migrated it is copied to ``backup_dir`` (default: ``backups/`` beside the file).
        """
        path = Path(path).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
        except OSError as exc:
            raise StoreError(f"Could not create the pool file {path}: {exc.strerror or exc}") from exc
        with translated(path):
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            with translated(path):
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"Could not switch {path} to WAL mode (got {mode})")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                copy = migrations.migrate(conn, path, backup_dir or path.parent / "backups")
        except BaseException:
            conn.close()
            raise
        db = cls(conn, path, clock)
        db.backup_made = copy
        db.damage = quick_check(conn)
        if db.damage is not None:
            # A warning, not a refusal: damage outside the accounts (e.g. the activity table) leaves
            # the pool able to serve; damaged accounts already fail the reads above.
            log.warning("%s (PRAGMA quick_check: %s)", _corrupt(path), db.damage)
        return db

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` (nested calls use a SAVEPOINT).

        Rolls back and re-raises on any exception; holds the instance lock throughout.
        """
        with self._lock, translated(self.path):
            savepoint = f"sp{self._depth}" if self._depth else None
            self._conn.execute(f"SAVEPOINT {savepoint}" if savepoint else "BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if savepoint:
                    self._conn.execute(f"ROLLBACK TO {savepoint}")
                    self._conn.execute(f"RELEASE {savepoint}")
                elif self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            try:
                self._conn.execute(f"RELEASE {savepoint}" if savepoint else "COMMIT")
            except BaseException:
                if not savepoint and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        with self._lock, translated(self.path):
            rows: list[Row] = self._conn.execute(sql, params).fetchall()
            return rows


def quick_check(conn: sqlite3.Connection) -> str | None:
    """``PRAGMA quick_check``: None when the file is sound, else the first problems it lists."""
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    found = [str(r[0]) for r in rows]
    return None if found == ["ok"] else "; ".join(found)


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turn sqlite3 exceptions into the project's store errors (messages name the file, never data)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            raise StoreLockedError(
                f"The pool file {path} is busy: another codex-pool process is writing; try again"
            ) from exc
        if "malformed" in text or "not a database" in text:
            raise _corrupt(path) from exc
        raise StoreError(f"The pool file {path} could not be used: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        text = str(exc).lower()
        if "malformed" in text or "not a database" in text or "corrupt" in text:
            raise _corrupt(path) from exc
        if isinstance(exc, sqlite3.IntegrityError):
            raise StoreError(f"The pool file {path} refused a change: {exc}") from exc
        raise StoreError(f"The pool file {path} could not be used: {exc}") from exc


def _corrupt(path: Path) -> StoreCorruptError:
    return StoreCorruptError(
        f"The pool file {path} is damaged or not a codex-pool database; it was left untouched."
        " Move it aside (keep a copy) to start a new pool, or restore one from its backups folder"
    )
