"""The state every codex-pool process shares through the pool file, beside the accounts:
cooldowns, the quota cache, lease locks, dormant-window touches and recent routing decisions.

Mixed into :class:`tray.store.accounts.Store`; see there for threads and errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tray.models import CandidateScore, Cooldown, Decision, QuotaEntry
from tray.store.connection import Database, Row

DECISIONS_KEPT = 5000


class SharedState(Database):
    """Cooldowns, quota cache, leases, dormant touches and decisions (rows shared by processes)."""

    decisions_kept: int = DECISIONS_KEPT

    # ---- cooldowns ---------------------------------------------------------------------------

    def set_cooldown(self, cooldown: Cooldown) -> None:
        now = self._clock()
        with self.atomic() as db:
            db.execute(
                "INSERT INTO cooldowns (account_id, until, status, reason, source, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET until = excluded.until,"
                " status = excluded.status, reason = excluded.reason, source = excluded.source,"
                " updated_at = excluded.updated_at",
                (cooldown.account_id, cooldown.until, cooldown.status, cooldown.reason, cooldown.source,
                 now, now),
            )

    def clear_cooldown(self, account_id: int) -> None:
        with self.atomic() as db:
            db.execute("DELETE FROM cooldowns WHERE account_id = ?", (account_id,))

    def cooldowns(self, now: float | None = None) -> dict[int, Cooldown]:
        """Cooldowns still running at ``now`` (default: the store's clock), by account id."""
        at = self._clock() if now is None else now
        rows = self._read(
            "SELECT account_id, until, status, reason, source FROM cooldowns WHERE until > ?", (at,)
        )
        return {int(r[0]): Cooldown(int(r[0]), float(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows}

    # ---- quota cache -------------------------------------------------------------------------

    def put_usage(self, account_id: int, raw: str, at: float) -> None:
        """Cache a raw usage payload (JSON text) observed at ``at``."""
        with self.atomic() as db:
            db.execute(
                "INSERT INTO quota_cache (account_id, raw, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (account_id) DO UPDATE SET raw = excluded.raw,"
                " updated_at = excluded.updated_at",
                (account_id, raw, at),
            )

    def merge_usage(self, account_id: int, merge: Callable[[str | None], str], at: float) -> str:
        """Replace the cached payload with ``merge(current text or None)`` observed at ``at``, read
        and written in one write transaction: two processes merging at once both land (a plain
        read then :meth:`put_usage` would let one overwrite the other). ``merge`` must be quick and
        pure; returns what was stored."""
        with self.atomic() as db:
            row = db.execute("SELECT raw FROM quota_cache WHERE account_id = ?", (account_id,)).fetchone()
            raw = merge(None if row is None else str(row[0]))
            db.execute(
                "INSERT INTO quota_cache (account_id, raw, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (account_id) DO UPDATE SET raw = excluded.raw,"
                " updated_at = excluded.updated_at",
                (account_id, raw, at),
            )
        return raw

    def usage(self, account_id: int) -> QuotaEntry | None:
        rows = self._read(
            "SELECT account_id, raw, updated_at FROM quota_cache WHERE account_id = ?", (account_id,)
        )
        return QuotaEntry(int(rows[0][0]), str(rows[0][1]), float(rows[0][2])) if rows else None

    def usages(self) -> dict[int, QuotaEntry]:
        rows = self._read("SELECT account_id, raw, updated_at FROM quota_cache")
        return {int(r[0]): QuotaEntry(int(r[0]), str(r[1]), float(r[2])) for r in rows}

    def clear_usage(self, account_id: int) -> None:
        with self.atomic() as db:
            db.execute("DELETE FROM quota_cache WHERE account_id = ?", (account_id,))

    # ---- leases ------------------------------------------------------------------------------

    def acquire_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Take (or, for the same owner, renew) the lease ``key`` for ``ttl`` seconds.

        Exclusive across processes; a lease past its end can be taken over. Returns whether we hold it.
        """
        now = self._clock()
        with self.atomic() as db:
            cur = db.execute(
                "INSERT INTO leases (key, owner, until, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until = excluded.until,"
                " updated_at = excluded.updated_at WHERE leases.until <= ? OR leases.owner = excluded.owner",
                (key, owner, now + ttl, now, now),
            )
            return cur.rowcount == 1

    def release_lease(self, key: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""
        with self.atomic() as db:
            db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))

    # ---- dormant touches ---------------------------------------------------------------------

    def touch_dormant(self, account_id: int, label: str, until: float) -> None:
        """Remember that the window ``label`` of this account was touched; suppress until ``until``.
        Rows whose suppression ran out are deleted in the same transaction: cleanup happens here, in
        the background writer, never in a read (there are at most two rows per account)."""
        now = self._clock()
        with self.atomic() as db:
            db.execute(
                "INSERT INTO dormant_touches (account_id, label, until, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account_id, label) DO UPDATE SET until = excluded.until",
                (account_id, label, until, now),
            )
            db.execute("DELETE FROM dormant_touches WHERE until <= ?", (now,))

    def dormant_touches(self, now: float) -> dict[int, set[str]]:
        """Window labels still suppressed at ``now``, by account id. A pure read (the request path
        calls it on the event loop); rows that ran out are ignored here and deleted by the next
        :meth:`touch_dormant`."""
        rows = self._read("SELECT account_id, label FROM dormant_touches WHERE until > ?", (now,))
        out: dict[int, set[str]] = {}
        for account_id, label in rows:
            out.setdefault(int(account_id), set()).add(str(label))
        return out

    # ---- decisions ---------------------------------------------------------------------------

    def record_decision(self, decision: Decision) -> None:
        """Append a decision; only the newest ``decisions_kept`` (default 5,000) are kept."""
        scores = json.dumps(
            [{"account_id": s.account_id, "name": s.name, "score": s.score} for s in decision.scores]
        )
        with self.atomic() as db:
            cur = db.execute(
                "INSERT INTO decisions (at, account_id, account_name, reason, scores, fast_note, cache_age,"
                " status, latency_ms, route) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (decision.at, decision.account_id, decision.account_name, decision.reason, scores,
                 decision.fast_note, decision.cache_age, decision.status, decision.latency_ms,
                 decision.route),
            )
            newest = int(cur.lastrowid or 0)
            if newest > self.decisions_kept:
                db.execute("DELETE FROM decisions WHERE id <= ?", (newest - self.decisions_kept,))

    def decisions(self, limit: int = 100) -> list[Decision]:
        """The newest ``limit`` decisions, newest first."""
        rows = self._read(
            "SELECT at, account_id, account_name, reason, scores, fast_note, cache_age, status, latency_ms,"
            " route FROM decisions ORDER BY id DESC LIMIT ?",
            (max(0, limit),),
        )
        return [_decision(r) for r in rows]


def _decision(r: Row) -> Decision:
    try:
        raw_scores = json.loads(r[4])
    except ValueError:
        raw_scores = []
    scores = tuple(
        CandidateScore(
            int(s["account_id"]), str(s["name"]),
            None if s["score"] is None else float(s["score"]),
        )
        for s in raw_scores
        if isinstance(s, dict)
    )
    return Decision(
        at=float(r[0]), account_id=r[1], account_name=r[2], reason=str(r[3]), scores=scores, fast_note=r[5],
        cache_age=r[6], status=r[7], latency_ms=r[8], route=str(r[9] or ""),
    )
