"""The pool file: one SQLite database shared by every codex-pool process: its connection and
migrations, the accounts, and the state processes share (cooldowns, quota cache, leases, history).
"""

from __future__ import annotations

from tray.store.accounts import Store

__all__ = [
    "Store",
]
