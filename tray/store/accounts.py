"""The pool file: accounts and the state every codex-pool process shares.

One SQLite file (WAL, ``busy_timeout`` 5 s, ``synchronous=NORMAL``, foreign keys) per user. The
accounts live here; :mod:`tray.store.shared` adds cooldowns, the quota cache, lease locks, dormant
touches and decisions, :mod:`tray.store.history` the usage samples; :mod:`tray.store.connection` owns the
connection and transactions.

Threads: one :class:`Store` holds one connection (``check_same_thread=False``) behind a re-entrant
lock, so the proxy loop, its worker threads and the GUI thread can share an instance. Processes
share the file through SQLite's locking and the ``leases`` table.

Errors: a write lock held elsewhere past the busy timeout raises :class:`StoreLockedError`; a
damaged file raises :class:`StoreCorruptError` naming it and leaves it untouched. Messages never
carry a token.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tray.errors import AccountError, AccountNotFoundError
from tray.models import Account, AccountState, Identity, TokenSet
from tray.store.connection import Row
from tray.store.history import History
from tray.store.shared import DECISIONS_KEPT, SharedState

__all__ = ["DECISIONS_KEPT", "Store"]

_ACCOUNT_COLUMNS = (
    "id, chatgpt_account_id, subject, email, label, plan, priority, is_primary, state, state_reason,"
    " state_at, access_token, refresh_token, id_token, expires_at, created_at, updated_at"
)


class Store(SharedState, History):
    """The pool database. Create with :meth:`Store.open` (path, clock); accounts are addressed by
    ``Account.id``. All methods are thread-safe and each is one short transaction."""

    # ---- accounts --------------------------------------------------------------------------

    def accounts(self, include_inactive: bool = True) -> list[Account]:
        """Every account in priority order; ``include_inactive=False`` keeps only enabled ones."""
        where = "" if include_inactive else "WHERE state = 'enabled'"
        rows = self._read(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts {where} ORDER BY priority, id")  # noqa: S608
        return [_account(r) for r in rows]

    def get(self, account_id: int) -> Account | None:
        rows = self._read(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))  # noqa: S608
        return _account(rows[0]) if rows else None

    def by_identity(self, identity: Identity) -> Account | None:
        rows = self._read(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE chatgpt_account_id = ? AND subject = ?",  # noqa: S608
            (identity.chatgpt_account_id, identity.subject),
        )
        return _account(rows[0]) if rows else None

    def save_login(
        self,
        identity: Identity,
        tokens: TokenSet,
        email: str | None,
        plan: str | None,
        make_primary: bool = False,
    ) -> Account:
        """Store a completed login and return the account.

        A known identity gets the new tokens and metadata (and is re-enabled if it needed login);
        it is never duplicated and keeps its primary flag. A new identity is appended at the end of
        the priority order; the first account ever becomes the primary. ``make_primary`` sets the
        flag and moves the account to the front.
        """
        now = self._clock()
        with self.atomic() as db:
            found = db.execute(
                "SELECT id, state FROM accounts WHERE chatgpt_account_id = ? AND subject = ?",
                (identity.chatgpt_account_id, identity.subject),
            ).fetchone()
            if found is not None:
                account_id = int(found[0])
                reenable = found[1] == AccountState.NEEDS_LOGIN.value
                db.execute(
                    "UPDATE accounts SET access_token = ?, refresh_token = ?,"
                    " id_token = COALESCE(?, id_token), expires_at = ?, email = COALESCE(?, email),"
                    " plan = COALESCE(?, plan), updated_at = ? WHERE id = ?",
                    (tokens.access_token, tokens.refresh_token, tokens.id_token, tokens.expires_at,
                     email, plan, now, account_id),
                )
                if reenable:
                    db.execute(
                        "UPDATE accounts SET state = 'enabled', state_reason = NULL, state_at = ?"
                        " WHERE id = ?",
                        (now, account_id),
                    )
            else:
                count, top = db.execute(
                    "SELECT count(*), COALESCE(MAX(priority) + 1, 0) FROM accounts"
                ).fetchone()
                cur = db.execute(
                    "INSERT INTO accounts (chatgpt_account_id, subject, email, plan, priority, is_primary,"
                    " state, state_at, access_token, refresh_token, id_token, expires_at, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'enabled', ?, ?, ?, ?, ?, ?, ?)",
                    (identity.chatgpt_account_id, identity.subject, email, plan, int(top),
                     1 if count == 0 else 0, now, tokens.access_token, tokens.refresh_token,
                     tokens.id_token, tokens.expires_at, now, now),
                )
                account_id = int(cur.lastrowid or 0)
            if make_primary:
                self._make_primary(db, account_id, now)
        return self._must_get(account_id)

    def set_label(self, account_id: int, label: str | None) -> Account:
        """Set (or with ``None``/blank, clear) the display label."""
        text = (label or "").strip() or None
        self._update(account_id, "label = ?", (text,))
        return self._must_get(account_id)

    def move(self, account_id: int, index: int) -> Account:
        """Move an account to ``index`` (0-based, clamped) in the priority order, renumbering densely."""
        with self.atomic() as db:
            order = self._order(db)
            if account_id not in order:
                raise AccountNotFoundError(f"There is no account with id {account_id}")
            order.remove(account_id)
            order.insert(max(0, min(index, len(order))), account_id)
            self._renumber(db, order)
        return self._must_get(account_id)

    def set_primary(self, account_id: int) -> Account:
        """Make this the primary (the flag moves off any other account) and move it to the front."""
        with self.atomic() as db:
            self._exists(db, account_id)
            self._make_primary(db, account_id, self._clock())
        return self._must_get(account_id)

    def set_state(self, account_id: int, state: AccountState, reason: str | None = None) -> Account:
        """Enable, disable or mark *needs login*; ``reason`` says why (cleared when enabling)."""
        state = AccountState(state)
        why = None if state is AccountState.ENABLED else reason
        self._update(
            account_id, "state = ?, state_reason = ?, state_at = ?", (state.value, why, self._clock())
        )
        return self._must_get(account_id)

    def remove(self, account_id: int) -> None:
        """Delete the account and its cooldown, quota and dormant rows; close the priority gap."""
        with self.atomic() as db:
            self._exists(db, account_id)
            db.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
            self._renumber(db, self._order(db))

    def update_tokens(
        self, account_id: int, tokens: TokenSet, expected_refresh_token: str | None = None
    ) -> bool:
        """Replace the tokens. With ``expected_refresh_token``, only when the stored refresh token
        still equals it (compare-and-set); returns whether the row changed."""
        sql = (
            "UPDATE accounts SET access_token = ?, refresh_token = ?, id_token = COALESCE(?, id_token),"
            " expires_at = ?, updated_at = ? WHERE id = ?"
        )
        params: tuple[Any, ...] = (tokens.access_token, tokens.refresh_token, tokens.id_token,
                                   tokens.expires_at, self._clock(), account_id)
        if expected_refresh_token is not None:
            sql += " AND refresh_token = ?"
            params += (expected_refresh_token,)
        with self.atomic() as db:
            return db.execute(sql, params).rowcount == 1

    def update_meta(self, account_id: int, plan: str | None = None, email: str | None = None) -> None:
        """Update plan and/or email when given (``None`` keeps the stored value)."""
        self._update(account_id, "plan = COALESCE(?, plan), email = COALESCE(?, email)", (plan, email))

    def routable(self, now: float) -> list[Account]:
        """Enabled accounts not cooling down at ``now``, in priority order."""
        rows = self._read(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts a WHERE state = 'enabled' AND NOT EXISTS"  # noqa: S608
            " (SELECT 1 FROM cooldowns c WHERE c.account_id = a.id AND c.until > ?) ORDER BY priority, id",
            (now,),
        )
        return [_account(r) for r in rows]

    def select(self, selector: str) -> Account:
        """Find one account the way a user names it: the 1-based position shown by ``accounts``
        (``#2`` forces that reading), the row id (``id:7`` forces it), an exact label or an email.
        Raises :class:`AccountNotFoundError`, or :class:`AccountError` when it names several."""
        text = selector.strip()
        everyone = self.accounts()
        by_id = {a.id: a for a in everyone}
        matches: dict[int, list[str]] = {}

        def hit(account: Account, how: str) -> None:
            matches.setdefault(account.id, []).append(how)

        bare = text.lstrip("#")
        if text.lower().startswith("id:") and text[3:].strip().isdigit():
            if (n := int(text[3:])) in by_id:
                hit(by_id[n], f"id {n}")
        elif bare.isdigit():
            n = int(bare)
            if 1 <= n <= len(everyone):
                hit(everyone[n - 1], f"position #{n}")
            if not text.startswith("#") and n in by_id:
                hit(by_id[n], f"id {n}")
        for account in everyone:
            if text and account.label == text:
                hit(account, "label")
            if text and account.email and account.email.lower() == text.lower():
                hit(account, "email")
        if not matches:
            raise AccountNotFoundError(
                f'No account matches "{selector}"; use the # or id shown by "codex-pool accounts",'
                " a label or an email"
            )
        if len(matches) > 1:
            names = "; ".join(
                f"{by_id[i].name} (id {i}, by {' and '.join(how)})" for i, how in matches.items()
            )
            raise AccountError(
                f'"{selector}" matches several accounts: {names}. Use "#<position>", "id:<id>",'
                " or a unique label"
            )
        return by_id[next(iter(matches))]
    # ---- helpers -----------------------------------------------------------------------------

    def _must_get(self, account_id: int) -> Account:
        account = self.get(account_id)
        if account is None:
            raise AccountNotFoundError(f"There is no account with id {account_id}")
        return account

    def _exists(self, db: sqlite3.Connection, account_id: int) -> None:
        if db.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
            raise AccountNotFoundError(f"There is no account with id {account_id}")

    def _update(self, account_id: int, assignments: str, params: tuple[Any, ...]) -> None:
        with self.atomic() as db:
            cur = db.execute(
                f"UPDATE accounts SET {assignments}, updated_at = ? WHERE id = ?",  # noqa: S608
                (*params, self._clock(), account_id),
            )
            if cur.rowcount != 1:
                raise AccountNotFoundError(f"There is no account with id {account_id}")

    def _make_primary(self, db: sqlite3.Connection, account_id: int, now: float) -> None:
        db.execute(
            "UPDATE accounts SET is_primary = 0, updated_at = ? WHERE is_primary = 1 AND id != ?",
            (now, account_id),
        )
        db.execute("UPDATE accounts SET is_primary = 1, updated_at = ? WHERE id = ?", (now, account_id))
        order = self._order(db)
        order.remove(account_id)
        self._renumber(db, [account_id, *order])

    @staticmethod
    def _order(db: sqlite3.Connection) -> list[int]:
        return [int(r[0]) for r in db.execute("SELECT id FROM accounts ORDER BY priority, id")]

    @staticmethod
    def _renumber(db: sqlite3.Connection, order: list[int]) -> None:
        """Give ``order`` the priorities 0..n-1 (only rows whose number changes are written)."""
        current = dict(db.execute("SELECT id, priority FROM accounts").fetchall())
        db.executemany(
            "UPDATE accounts SET priority = ? WHERE id = ?",
            [(i, account_id) for i, account_id in enumerate(order) if current.get(account_id) != i],
        )


def _account(r: Row) -> Account:
    return Account(
        id=int(r[0]),
        identity=Identity(chatgpt_account_id=str(r[1]), subject=str(r[2])),
        email=r[3],
        label=r[4],
        plan=r[5],
        priority=int(r[6]),
        primary=bool(r[7]),
        state=AccountState(r[8]),
        state_reason=r[9],
        state_at=None if r[10] is None else float(r[10]),
        tokens=TokenSet(
            access_token=str(r[11]), refresh_token=str(r[12]), id_token=r[13], expires_at=float(r[14])
        ),
        created_at=float(r[15]),
        updated_at=float(r[16]),
    )
