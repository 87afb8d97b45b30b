"""Another OS process holding the pool file's write lock, the way a second codex-pool process, a
backup tool or ``sqlite3`` opened on the file can (tests only)::

    with write_lock(db, seconds=3.0) as lock:   # returns once the lock is taken
        ...                                      # every write in this process now waits, then fails
    lock.released                                # True once the other process has committed

    holder = LockHolder(db, seconds=8.0)         # started, not locking yet
    holder.take()                                # locks within milliseconds (e.g. from a fake's hook)
    holder.close()                               # waits for the release

The holder runs ``BEGIN IMMEDIATE`` in a real subprocess and commits after ``seconds``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    print("ready", flush=True)
    sys.stdin.readline()
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    print("released", flush=True)
    """
)


class LockHolder:
    """A started lock-holding process; :meth:`take` makes it lock, :meth:`close` waits for the end."""

    def __init__(self, db: Path, seconds: float) -> None:
        self.seconds = seconds
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(seconds)], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._done = threading.Event()
        self._taken = False
        if self._line() != "ready":
            self.proc.kill()
            raise AssertionError("the lock holder did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    @property
    def released(self) -> bool:
        return self._done.is_set()

    def take(self) -> LockHolder:
        """Take the write lock now; returns once it is held."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        if self._line() != "locked":
            raise AssertionError("the lock holder could not take the write lock")
        self._taken = True

        def watch() -> None:
            self._line()  # "released", or EOF if it died
            self._done.set()

        threading.Thread(target=watch, daemon=True).start()
        return self

    def close(self) -> None:
        """Wait for the release (when taken) and the end of the process."""
        if not (self._taken and self._done.wait(self.seconds + 30)) and self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@contextmanager
def write_lock(db: Path, seconds: float) -> Iterator[LockHolder]:
    """Hold the write lock of ``db`` from another process for ``seconds``; waits for it on exit."""
    holder = LockHolder(db, seconds).take()
    try:
        yield holder
    finally:
        holder.close()
