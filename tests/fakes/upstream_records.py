"""What the fake backend remembers (tests only): the requests it received and its accounts."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import replies
from tests.fakes.replies import Reply


@dataclass(frozen=True)
class Recorded:
    """One request the fake received. ``repr`` never shows the Authorization value."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, the raw text when it was not JSON, None when empty
    account_id: str | None  # the registered account the bearer token belongs to
    raw: bytes = b""  # the body as it came on the wire (still compressed when it was)
    socket: int = 0  # the WebSocket connection it came on (numbered from 1); 0 for HTTP

    @property
    def over_websocket(self) -> bool:
        return self.socket > 0

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    def redacted_headers(self) -> dict[str, str]:
        return {
            k: ("<redacted>" if k in ("authorization", "x-api-key") else v) for k, v in self.headers.items()
        }

    def __repr__(self) -> str:
        return (
            f"Recorded({self.method} {self.path} account={self.account_id!r} "
            f"headers={self.redacted_headers()!r})"
        )


@dataclass
class FakeAccount:
    account_id: str
    usage: dict[str, Any]
    default: Reply = field(default_factory=replies.ok)
    script: deque[Reply] = field(default_factory=deque)
    usage_script: deque[Reply] = field(default_factory=deque)
    models_script: deque[Reply] = field(default_factory=deque)
    handshake_script: deque[Reply] = field(default_factory=deque)  # WebSocket upgrades refused

    @property
    def plan_type(self) -> str:
        return str(self.usage.get("plan_type") or "plus")
