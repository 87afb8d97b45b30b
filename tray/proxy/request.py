"""A request as the proxy read it (:class:`Incoming`), and what an attempt on one account needs from
the pipeline that runs it (:class:`Collaborators`): the seam between the pipeline, the plan and the
attempt, so none of them imports the one that assembles it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from tray.models import Account, Clock
from tray.proxy.chatrequest import ChatOptions
from tray.proxy.owners import ReasoningOwners
from tray.quota import QuotaService
from tray.store import Store

TURN_STATES_KEPT = 10_000



class Background(Protocol):
    """Runs short store writes off the event loop; ``after`` runs on the loop once they are done."""

    def __call__(self, fn: Callable[[], object], after: Callable[[], object] | None = None) -> None: ...


@dataclass(frozen=True)
class Incoming:
    """A client request, read once. ``body`` is what goes upstream unchanged (the client's own bytes,
    compressed if it sent them so, or the ``/v1`` body shaped once); ``text`` is its JSON text (the
    same bytes unless the client compressed them), to which an attempt in fast mode appends
    ``service_tier`` in its own copy."""

    route: str  # "responses", "compact", "models", "v1.responses", "v1.chat", "v1.models"
    method: str
    path: str  # below upstream-url, e.g. "/codex/responses"
    query: str
    headers: tuple[tuple[str, str], ...]  # the client's, names lower-case
    body: bytes
    fields: dict[str, Any] | None  # the body's top-level fields routing reads, when it is an object
    mode: str = "stream"  # "stream" | "aggregate" (non-streaming /v1) | "models" (/v1/models)
    defaults: tuple[tuple[str, str], ...] = ()  # headers added when the client sent none
    turn_state: str | None = None
    chat: ChatOptions | None = None  # a Chat Completions request: the answer goes back in that shape
    text: bytes | None = None  # the body's JSON text when it differs from ``body`` (decompressed)
    sealed: tuple[bytes, ...] = ()  # digests of its input items' encrypted content (their maker's only)

    @property
    def json_text(self) -> bytes:
        """The body's JSON text: ``body`` itself unless the client compressed it."""
        return self.body if self.text is None else self.text

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class FreshTokens(Protocol):
    async def ensure_fresh(self, account: Account, *, force: bool = False) -> Account: ...


@dataclass
class PoolHealth:
    """Per-process memory of whether the last request found the pool exhausted."""

    exhausted: bool = False
    turn_states: OrderedDict[str, int] = field(default_factory=OrderedDict)
    # Accounts this process just cooled down or marked needs-login, kept out of its own routing
    # until the background batch has written that (then the store decides, as for every process).
    held: dict[int, float] = field(default_factory=dict)  # account id -> until (clock)

    def hold(self, account_id: int, until: float) -> None:
        self.held[account_id] = max(until, self.held.get(account_id, until))

    def release(self, account_id: int) -> None:
        self.held.pop(account_id, None)

    def routable(self, accounts: list[Account], now: float) -> list[Account]:
        for account_id, until in list(self.held.items()):
            if until <= now:
                del self.held[account_id]
        return [a for a in accounts if a.id not in self.held]

    def turn_owner(self, value: str | None) -> int | None:
        return None if value is None else self.turn_states.get(value)

    def issued(self, value: str, account_id: int) -> None:
        self.turn_states[value] = account_id
        self.turn_states.move_to_end(value)
        while len(self.turn_states) > TURN_STATES_KEPT:
            self.turn_states.popitem(last=False)


@dataclass(frozen=True)
class Collaborators:
    """What an attempt uses, passed down by the pipeline (never the pipeline itself)."""

    store: Store  # writes, from the background batch only
    quota: QuotaService
    refresher: FreshTokens
    http: httpx.AsyncClient
    upstream_url: str  # fixed for the engine's life (a change in config.toml applies on restart)
    clock: Clock
    memory: PoolHealth
    background: Background  # run store writes off the loop: (write, then-on-the-loop)
    emit: Callable[[Any], None]
    owners: ReasoningOwners  # whose encrypted items are whose (shared with the WebSocket path)
