"""Which account made each piece of encrypted content the proxy has seen (pure, in memory).

Codex CLI sends its whole context again on every turn (and on a new WebSocket), each reasoning
item with the ``encrypted_content`` the account that answered made; a compaction item carries one
too. Another account cannot decrypt it (the backend refuses the whole request with
``invalid_encrypted_content``, and every later turn of that session with it), so a request going to
another account leaves those items out.

Owners are learned three ways: from the answers a WebSocket relays (their output items), from the
account that answered a session's last turn (a blob the proxy has not seen before in a session's
context came from that answer: the proxy saw every earlier request), and from a request the
backend accepted (what it took, that account can read). A blob the backend refused is marked as
nobody's (:data:`NOBODY`), so it is left out wherever it goes. Blobs are kept as short digests,
newest :data:`KEPT` only; an unknown blob is sent as it is.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable

KEPT = 50_000
SESSIONS_KEPT = 10_000
NOBODY = 0  # the owner of a blob no account here could read (account ids start at 1)


def _digest(blob: str) -> bytes:
    return hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ReasoningOwners:
    """Blob digest → account id, and session key → the account that answered it last; least
    recently seen dropped first."""

    def __init__(self, kept: int = KEPT, sessions: int = SESSIONS_KEPT) -> None:
        self.kept = kept
        self.sessions = sessions
        self._owners: OrderedDict[bytes, int] = OrderedDict()
        self._answered: OrderedDict[str, int] = OrderedDict()

    def learn(self, account_id: int, blobs: Iterable[str]) -> None:
        for blob in blobs:
            key = _digest(blob)
            self._owners[key] = account_id
            self._owners.move_to_end(key)
        while len(self._owners) > self.kept:
            self._owners.popitem(last=False)

    def owner(self, blob: str) -> int | None:
        return self._owners.get(_digest(blob))

    def answered(self, session: str, account_id: int) -> None:
        """``account_id`` answered a turn of ``session``: the encrypted items of that answer are its."""
        self._answered[session] = account_id
        self._answered.move_to_end(session)
        while len(self._answered) > self.sessions:
            self._answered.popitem(last=False)

    def claim(self, session: str | None, blobs: Iterable[str]) -> None:
        """Blobs of a request's context seen for the first time belong to the account that answered
        the session's last turn (they came with that answer), when the proxy knows which."""
        last = self._answered.get(session) if session is not None else None
        if last is not None:
            self.learn(last, [b for b in blobs if self.owner(b) is None])

    def foreign_to(self, account_id: int) -> Callable[[str], bool]:
        """A predicate: was this blob made by an account other than ``account_id`` (or by none)?"""

        def foreign(blob: str) -> bool:
            owner = self.owner(blob)
            return owner is not None and owner != account_id

        return foreign

    def __len__(self) -> int:
        return len(self._owners)
