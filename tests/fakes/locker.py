"""Another OS process on the pool file holding its write lock, as a second codex-pool, a backup tool
or ``sqlite3`` opened on the file does (tests only). The one fake of that seam, in two modes:

On demand, from a test::

    with write_lock(db, seconds=3.0) as lock:   # returns once the other process holds the lock
        ...                                      # every write in this process now waits, then fails
    lock.released                                # True once the other process let go

    holder = LockHolder(db, seconds=8.0)         # started, not locking yet
    holder.take()                                # locks within milliseconds (e.g. from a fake's hook)
    holder.close()                               # waits for the release (``math.inf``: releases now)

Now and then, for soak runs::

    python -m tests.fakes.locker POOL_DB --random --seed 7 --min 0.5 --max 8 --gap-min 2 --gap-max 8

Each hold is ``BEGIN IMMEDIATE`` (the write lock: readers go on, writers wait for it), a wait, then
the end of the transaction. On demand, the process prints ``ready``, then for each ``hold SECONDS``
line on stdin ``locked`` and, when the time is up (or at ``release`` or the end of stdin),
``released``; ``write=`` runs one statement inside the hold and commits it. Now and then, every third
hold lasts at least :data:`LONG` seconds, past codex-pool's 5 s busy timeout, so a writer that waits
on it gives up; nothing changes in the file, and one line ``held <seconds> waited <seconds>`` is
printed per hold. Both stop at SIGTERM (releasing a lock they hold) or when stdin closes.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LONG = 5.5  # seconds: longer than codex-pool's busy timeout


# ---- the other process -----------------------------------------------------------------------------


def hold_now_and_then(db: Path, rng: random.Random, span: tuple[float, float], gap: tuple[float, float],
                      stop: threading.Event) -> None:
    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
    print("ready", flush=True)
    count = 0
    try:
        while not stop.wait(rng.uniform(*gap)):
            seconds = rng.uniform(*span)
            if count % 3 == 1:
                seconds = max(seconds, rng.uniform(LONG, max(LONG, span[1])))
            asked = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            got = time.monotonic()
            stop.wait(seconds)
            conn.execute("ROLLBACK")
            print(f"held {time.monotonic() - got:.3f} waited {got - asked:.3f}", flush=True)
            count += 1
    finally:
        conn.close()


def hold_on_demand(db: Path, write: str | None, stop: threading.Event) -> None:
    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
    release = threading.Event()
    orders: list[float] = []
    ordered = threading.Event()

    def read() -> None:
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["hold"]:
                orders.append(float(words[1]) if len(words) > 1 else math.inf)
                ordered.set()
            elif words[:1] == ["release"]:
                release.set()
        stop.set()
        release.set()
        ordered.set()

    threading.Thread(target=read, daemon=True).start()
    print("ready", flush=True)
    try:
        while True:
            ordered.wait()
            if not orders:
                if stop.is_set():
                    return
                ordered.clear()
                continue
            seconds = orders.pop(0)
            release.clear()
            conn.execute("BEGIN IMMEDIATE")
            if write:
                conn.execute(write)
            print("locked", flush=True)
            release.wait(None if math.isinf(seconds) else seconds)
            conn.execute("COMMIT")
            print("released", flush=True)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path)
    parser.add_argument("--random", action="store_true", help="hold now and then (soak runs)")
    parser.add_argument("--write", help="on demand: one statement to run and commit inside each hold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min", type=float, default=0.5)
    parser.add_argument("--max", type=float, default=8.0)
    parser.add_argument("--gap-min", type=float, default=2.0)
    parser.add_argument("--gap-max", type=float, default=8.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if not args.random:
        hold_on_demand(args.db, args.write, stop)
        return 0
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    hold_now_and_then(args.db, random.Random(args.seed), (args.min, args.max), (args.gap_min, args.gap_max),
                      stop)
    return 0


# ---- the test's side ------------------------------------------------------------------------------


class LockHolder:
    """A started lock-holding process; :meth:`take` makes it lock, :meth:`close` waits for the end."""

    def __init__(self, db: Path, seconds: float, *, write: str | None = None) -> None:
        self.seconds = seconds
        extra = ["--write", write] if write else []
        command = [sys.executable, "-m", "tests.fakes.locker", str(db), *extra]
        self.proc = subprocess.Popen(command, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     cwd=Path(__file__).resolve().parents[2])
        self._done = threading.Event()
        self._taken = False
        if self._line() != "ready":
            self.proc.kill()
            raise AssertionError("the lock holder did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def _say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    @property
    def released(self) -> bool:
        return self._done.is_set()

    def take(self) -> LockHolder:
        """Take the write lock now; returns once it is held."""
        self._say(f"hold {self.seconds}")
        if self._line() != "locked":
            raise AssertionError("the lock holder could not take the write lock")
        self._taken = True

        def watch() -> None:
            self._line()  # "released", or EOF if it died
            self._done.set()

        threading.Thread(target=watch, daemon=True).start()
        return self

    def wait_released(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def close(self) -> None:
        """Wait for the release (a lock held without end is released now) and the end of the process."""
        if self._taken and math.isinf(self.seconds) and self.proc.poll() is None:
            self._say("release")
        if not (self._taken and self._done.wait(min(self.seconds, 60.0) + 30)) and self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def write_lock(db: Path, seconds: float = math.inf, *, write: str | None = None) -> Iterator[LockHolder]:
    """Hold the write lock of ``db`` from another process for ``seconds`` (without end: until the
    block is left); waits for the release on exit."""
    holder = LockHolder(db, seconds, write=write).take()
    try:
        yield holder
    finally:
        holder.close()


if __name__ == "__main__":
    sys.exit(main())
