"""Which account made each piece of encrypted content the proxy has seen (pure, in memory).

Codex CLI sends its whole context again on every turn (and on a new WebSocket), each reasoning
item with the ``encrypted_content`` the account that answered made; a compaction item carries one
too. Another account cannot decrypt it (the backend refuses the whole request with
``invalid_encrypted_content``, and every later turn of that session with it), so a request going to
another account leaves those items out.

Owners are known for sure from the answers a WebSocket relays (their output items) and from a
request the backend accepted (what it took, that account can read). They are guessed for the
items of a session's context the proxy has not seen before: those came with the answer to the
session's last turn, so they are the account's that gave it (the proxy saw every earlier request).
When the backend refuses a context, the guessed and unknown items it held are marked as no
account's (:data:`NOBODY`) and left out wherever they go; the sure ones stay.

Items are known by :func:`digest` (computed once per request, from the blob's two ends: the end of
an encrypted blob is its authentication tag), newest :data:`KEPT` only; an unknown one is sent as
it is.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable

KEPT = 50_000
SESSIONS_KEPT = 10_000
NOBODY = 0  # the owner of an item no account here could read (account ids start at 1)
_ENDS = 64  # characters of each end of a blob that identify it


def digest(blob: str) -> bytes:
    """A short key for ``blob``: its length and both ends, hashed (the cost does not grow with the blob)."""
    ends = f"{len(blob)}:{blob[:_ENDS]}:{blob[-_ENDS:]}" if len(blob) > 2 * _ENDS else blob
    return hashlib.blake2b(ends.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ReasoningOwners:
    """Item digest → (account id, known for sure), and session key → the account that answered it
    last; least recently seen dropped first."""

    def __init__(self, kept: int = KEPT, sessions: int = SESSIONS_KEPT) -> None:
        self.kept = kept
        self.sessions = sessions
        self._owners: OrderedDict[bytes, tuple[int, bool]] = OrderedDict()
        self._answered: OrderedDict[str, int] = OrderedDict()

    def learn(self, account_id: int, digests: Iterable[bytes], *, sure: bool = True) -> None:
        for key in digests:
            if sure or key not in self._owners or not self._owners[key][1]:
                self._owners[key] = (account_id, sure)
            self._owners.move_to_end(key)
        while len(self._owners) > self.kept:
            self._owners.popitem(last=False)

    def owner(self, key: bytes) -> int | None:
        found = self._owners.get(key)
        return None if found is None else found[0]

    def answered(self, session: str, account_id: int) -> None:
        """``account_id`` answered a turn of ``session``: the encrypted items of that answer are its."""
        self._answered[session] = account_id
        self._answered.move_to_end(session)
        while len(self._answered) > self.sessions:
            self._answered.popitem(last=False)

    def claim(self, session: str | None, digests: Iterable[bytes]) -> None:
        """Items of a request's context seen for the first time belong (a guess) to the account that
        answered the session's last turn: they came with that answer."""
        last = self._answered.get(session) if session is not None else None
        if last is not None:
            self.learn(last, [d for d in digests if d not in self._owners], sure=False)

    def refused(self, account_id: int, digests: Iterable[bytes]) -> None:
        """The backend could not read some of ``digests`` for ``account_id``: every one not known
        for sure to be its goes to :data:`NOBODY`."""
        self.learn(NOBODY, [d for d in digests if self._owners.get(d) != (account_id, True)])

    def maker(self, digests: Iterable[bytes]) -> int | None:
        """The account that made most of these items, if any is known."""
        counts = Counter(o for o in map(self.owner, digests) if o is not None and o != NOBODY)
        return counts.most_common(1)[0][0] if counts else None

    def foreign_to(self, account_id: int) -> Callable[[bytes], bool]:
        """A predicate: was this item made by an account other than ``account_id`` (or by none)?"""

        def foreign(key: bytes) -> bool:
            owner = self.owner(key)
            return owner is not None and owner != account_id

        return foreign

    def __len__(self) -> int:
        return len(self._owners)
