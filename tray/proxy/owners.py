"""Which account made each piece of encrypted reasoning the proxy has relayed (pure, in memory).

Codex CLI sends its whole context again on a new connection, reasoning items included, each with
the ``encrypted_content`` the account that answered made. Another account cannot read it (the
backend refuses the request), so a request going to another account leaves those items out.
Blobs are kept as short digests, newest :data:`KEPT` only; an unknown blob (made before this
process started) is sent as it is.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable

KEPT = 50_000


def _digest(blob: str) -> bytes:
    return hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ReasoningOwners:
    """Blob digest → account id, least recently seen dropped first."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._owners: OrderedDict[bytes, int] = OrderedDict()

    def learn(self, account_id: int, blobs: Iterable[str]) -> None:
        for blob in blobs:
            key = _digest(blob)
            self._owners[key] = account_id
            self._owners.move_to_end(key)
        while len(self._owners) > self.kept:
            self._owners.popitem(last=False)

    def owner(self, blob: str) -> int | None:
        return self._owners.get(_digest(blob))

    def foreign_to(self, account_id: int) -> Callable[[str], bool]:
        """A predicate: was this blob made by an account other than ``account_id``?"""

        def foreign(blob: str) -> bool:
            owner = self.owner(blob)
            return owner is not None and owner != account_id

        return foreign

    def __len__(self) -> int:
        return len(self._owners)

