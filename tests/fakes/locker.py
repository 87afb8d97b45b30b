"""Another process on the pool file: takes its write lock at random moments and holds it a while,
as a second codex-pool, a backup tool or ``sqlite3`` opened on the file does (tests only).

    python -m tests.fakes.locker POOL_DB --seed 7 --min 0.5 --max 8 --gap-min 2 --gap-max 8

Each hold is ``BEGIN IMMEDIATE`` (the write lock: readers go on, writers wait for it), a sleep, then
``ROLLBACK``: nothing in the file changes. Every third hold lasts at least :data:`LONG` seconds,
past codex-pool's 5 s busy timeout, so a writer that waits on it gives up. The process prints
``ready`` when the file is open, then one line ``held <seconds> waited <seconds>`` per hold, and
stops at SIGTERM (releasing a lock it holds) or when stdin closes.
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

LONG = 5.5  # seconds: longer than codex-pool's busy timeout


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min", type=float, default=0.5)
    parser.add_argument("--max", type=float, default=8.0)
    parser.add_argument("--gap-min", type=float, default=2.0)
    parser.add_argument("--gap-max", type=float, default=8.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    hold_now_and_then(args.db, random.Random(args.seed), (args.min, args.max), (args.gap_min, args.gap_max),
                      stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
