"""Another OS process holding the pool file's write lock, the way a second codex-pool process, a
backup tool or ``sqlite3`` opened on the file can (tests only)::

    with write_lock(db, seconds=3.0) as lock:   # returns once the lock is taken
        ...                                      # every write in this process now waits, then fails
    lock.released                                # True once the other process has committed

The holder runs ``BEGIN IMMEDIATE`` in a real subprocess and commits after ``seconds``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    print("released", flush=True)
    """
)


@dataclass
class HeldLock:
    proc: subprocess.Popen[str]
    done: threading.Event

    @property
    def released(self) -> bool:
        return self.done.is_set()

    def wait(self, timeout: float = 60.0) -> None:
        if not self.done.wait(timeout):
            raise AssertionError("the other process never released the write lock")


@contextmanager
def write_lock(db: Path, seconds: float) -> Iterator[HeldLock]:
    """Hold the write lock of ``db`` from another process for ``seconds``; waits for it on exit."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(seconds)], text=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "locked":
        proc.kill()
        raise AssertionError("the lock holder did not start")
    done = threading.Event()

    def watch() -> None:
        assert proc.stdout is not None
        proc.stdout.readline()  # "released", or EOF if it died
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        yield HeldLock(proc, done)
    finally:
        done.wait(seconds + 30)
        proc.wait(10)
        proc.stdout.close()
