"""Session affinity: keep a conversation on one account while that helps the prompt cache.

The key comes from the request (``session-id`` header, else ``session_id``, else ``thread-id``, else
the body's ``prompt_cache_key``); no key means no affinity. :class:`AffinityMap` is an LRU map with a
TTL, per process (a small fixed prune would drop the newest sessions). Entries are ordered by their last
success, so expired ones are always at the head and pruning is amortized O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tray.models import Clock

AFFINITY_TTL = 300.0  # seconds a session stays on its account after its last success
AFFINITY_CAPACITY = 10_000
_HEADER_KEYS = ("session-id", "session_id", "thread-id")


def affinity_key(headers: Mapping[str, str], body: Mapping[str, Any] | None) -> str | None:
    """The session key of a request (header names are matched case-insensitively)."""
    try:
        lowered = {k.lower(): v for k, v in headers.items() if isinstance(k, str) and isinstance(v, str)}
    except Exception:  # a broken headers object only costs the request its affinity
        lowered = {}
    for name in _HEADER_KEYS:
        value = lowered.get(name, "").strip()
        if value:
            return value
    key = body.get("prompt_cache_key") if isinstance(body, Mapping) else None
    return key if isinstance(key, str) and key.strip() else None


@dataclass(frozen=True)
class AffinityEntry:
    """``account_id`` served the session's last successful request at ``at``; ``fast`` says whether
    that attempt ran in fast mode; ``turn_state_account`` issued the ``x-codex-turn-state`` the client
    holds (``None`` when none was seen)."""

    account_id: int
    at: float
    fast: bool | None = None
    turn_state_account: int | None = None


class AffinityMap:
    """Session key → :class:`AffinityEntry`, LRU with a TTL. Give the time per call (``now=``) or a
    ``clock`` at construction; every operation is O(1) amortized."""

    def __init__(
        self, *, ttl: float = AFFINITY_TTL, capacity: int = AFFINITY_CAPACITY, clock: Clock | None = None
    ) -> None:
        if capacity < 1 or ttl <= 0:
            raise ValueError("an affinity map needs a positive capacity and TTL")
        self.ttl = ttl
        self.capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[str, AffinityEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _now(self, now: float | None) -> float:
        if now is not None:
            return now
        if self._clock is None:
            raise TypeError("AffinityMap needs now= or a clock")
        return self._clock()

    def _expired(self, entry: AffinityEntry, now: float) -> bool:
        return now - entry.at >= self.ttl

    def _prune(self, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if not self._expired(oldest, now):
                break
            self._entries.popitem(last=False)

    def get(self, key: str, now: float | None = None) -> AffinityEntry | None:
        """The session's entry while its affinity is active, else ``None``."""
        t = self._now(now)
        self._prune(t)
        entry = self._entries.get(key)
        if entry is not None and self._expired(entry, t):
            del self._entries[key]
            return None
        return entry

    def sticky_account(self, key: str | None, now: float | None = None) -> int | None:
        entry = self.get(key, now) if key is not None else None
        return entry.account_id if entry is not None else None

    def set(
        self,
        key: str,
        account_id: int,
        fast: bool | None = None,
        now: float | None = None,
        *,
        turn_state: bool = False,
    ) -> AffinityEntry:
        """Record a successful request (2xx): the session stays on ``account_id`` for another TTL.
        ``turn_state``: the response carried ``x-codex-turn-state``, now owned by this account."""
        t = self._now(now)
        old = self._entries.pop(key, None)
        owner = account_id if turn_state else (old.turn_state_account if old is not None else None)
        entry = AffinityEntry(account_id, t, fast, owner)
        self._entries[key] = entry
        self._prune(t)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry

    def set_fast(self, key: str, fast: bool, now: float | None = None) -> None:
        """Remember the fast-mode state without sliding the window (e.g. a flip on a kept account)."""
        entry = self.get(key, now)
        if entry is not None:
            self._entries[key] = replace(entry, fast=fast)

    def forward_turn_state(self, key: str | None, account_id: int, now: float | None = None) -> bool:
        """Whether the client's ``x-codex-turn-state`` may go to ``account_id``: only to the account
        that issued it; forwarded when no owner is known."""
        entry = self.get(key, now) if key is not None else None
        owner = entry.turn_state_account if entry is not None else None
        return owner is None or owner == account_id

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)
