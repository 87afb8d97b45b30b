"""The usage history in the pool file: samples of each account's rate-limit windows.

Every quota signal (a usage fetch, ``x-codex-*`` headers, a ``codex.rate_limits`` event, a 429) is
also kept as one :class:`~tray.models.UsageSample` per window it reports. A window's sample is
skipped when the last one of that account and window is under :data:`SAMPLE_EVERY` seconds old and
says the same (used % equal, reset within :data:`RESET_JITTER` seconds); samples older than
:data:`HISTORY_DAYS` days go, and at most :data:`SAMPLES_KEPT` are kept. ``usage_latest`` holds each
window's newest sample, so that check and "where is every window now" are one indexed read.

Mixed into :class:`tray.store.accounts.Store` like :mod:`tray.store.shared`; every process on the pool file
shares the rows. Writes come from the quota cache's writers (worker threads, the request path's
background batch), never from the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable

from tray.models import RESET_JITTER, UsageSample
from tray.store.connection import Database, Row

SAMPLE_EVERY = 60.0  # seconds: at most one unchanged sample per account and window this often
HISTORY_DAYS = 35
SAMPLES_KEPT = 200_000  # about 20 MB of pool file at most

_COLUMNS = "account_id, window_seconds, used_percent, reset_at, source, at"


def same_reading(old: UsageSample, new: UsageSample) -> bool:
    """Whether ``new`` says what ``old`` said: the same used % and the same reset."""
    if abs(old.used_percent - new.used_percent) > 1e-6:
        return False
    if old.reset_at is None or new.reset_at is None:
        return old.reset_at is None and new.reset_at is None
    return abs(old.reset_at - new.reset_at) < RESET_JITTER


class History(Database):
    """Usage samples (rows shared by processes)."""

    samples_kept: int = SAMPLES_KEPT

    def record_samples(self, samples: Iterable[UsageSample]) -> int:
        """Keep ``samples`` (each unless its window's last sample is young and says the same);
        returns how many were kept. Old and surplus rows are deleted in the same transaction."""
        kept = 0
        with self.atomic() as db:
            for sample in samples:
                row = db.execute(
                    f"SELECT {_COLUMNS} FROM usage_latest WHERE account_id = ? AND window_seconds = ?",  # noqa: S608
                    (sample.account_id, sample.window_seconds),
                ).fetchone()
                last = None if row is None else _sample(row)
                young = last is not None and 0 <= sample.at - last.at < SAMPLE_EVERY
                if young and last is not None and same_reading(last, sample):
                    continue
                values = (sample.account_id, sample.window_seconds, sample.used_percent, sample.reset_at,
                          sample.source, sample.at)
                cur = db.execute(f"INSERT INTO usage_samples ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", values)  # noqa: S608
                if last is None or sample.at >= last.at:  # a late arrival from another process stays history
                    db.execute(
                        f"INSERT OR REPLACE INTO usage_latest ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                        values,
                    )
                kept += 1
                newest = int(cur.lastrowid or 0)
                if newest > self.samples_kept:
                    db.execute("DELETE FROM usage_samples WHERE id <= ?", (newest - self.samples_kept,))
            if kept:
                cutoff = self._clock() - HISTORY_DAYS * 86400.0
                db.execute("DELETE FROM usage_samples WHERE at < ?", (cutoff,))
                db.execute("DELETE FROM usage_latest WHERE at < ?", (cutoff,))
        return kept

    def latest_samples(self) -> list[UsageSample]:
        """Each account's and window's newest sample."""
        rows = self._read(f"SELECT {_COLUMNS} FROM usage_latest ORDER BY account_id, window_seconds")  # noqa: S608
        return [_sample(r) for r in rows]

    def samples(
        self, since: float, until: float | None = None, *, baseline: bool = True
    ) -> list[UsageSample]:
        """Samples observed from ``since`` to ``until`` (default: all after ``since``), oldest first.
        With ``baseline``, each window's last sample before ``since`` comes first too: it tells
        where that window stood when the range began."""
        end = float("inf") if until is None else until
        rows = self._read(
            f"SELECT {_COLUMNS} FROM usage_samples WHERE at >= ? AND at <= ? ORDER BY at, id",  # noqa: S608
            (since, end),
        )
        found = [_sample(r) for r in rows]
        if not baseline:
            return found
        before: list[UsageSample] = []
        for latest in self.latest_samples():
            prior = self._read(
                f"SELECT {_COLUMNS} FROM usage_samples WHERE account_id = ? AND window_seconds = ?"  # noqa: S608
                " AND at < ? ORDER BY at DESC, id DESC LIMIT 1",
                (latest.account_id, latest.window_seconds, since),
            )
            before += [_sample(r) for r in prior]
        before.sort(key=lambda s: s.at)
        return before + found


def _sample(r: Row) -> UsageSample:
    return UsageSample(
        account_id=int(r[0]), window_seconds=float(r[1]), used_percent=float(r[2]),
        reset_at=None if r[3] is None else float(r[3]), source=str(r[4]), at=float(r[5]),
    )
