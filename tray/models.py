"""Plain data shared by every layer: frozen dataclasses, stdlib only.

Times are Unix epoch **seconds** as ``float`` everywhere (payloads in milliseconds are converted at
the edges). Durations are seconds. Code that needs "now" takes a :data:`Clock`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Clock = Callable[[], float]
"""Returns the current Unix time in seconds (``time.time`` in production, a fixed value in tests)."""

RESET_JITTER = 60.0  # seconds: reset times this close are one reset (rounding in headers, clocks)


class AccountState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"  # switched off by the user
    NEEDS_LOGIN = "needs_login"  # refresh token dead or durable 401: the user must sign in again


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    id_token: str | None
    expires_at: float  # epoch seconds when the access token expires

    def __repr__(self) -> str:  # never let a token reach a log line through repr()
        return f"TokenSet(expires_at={self.expires_at!r}, access_token=<redacted>, refresh_token=<redacted>)"


@dataclass(frozen=True)
class Identity:
    """Who an account is: two members of one Team workspace are two identities."""

    chatgpt_account_id: str
    subject: str


@dataclass(frozen=True)
class Account:
    id: int  # local row id, stable for the life of the row
    identity: Identity
    email: str | None
    label: str | None
    plan: str | None  # "plus", "pro", "prolite", "team", ... (from JWT claims or usage payloads)
    priority: int  # dense 0..n-1; 0 is tried first when scores tie
    primary: bool
    state: AccountState
    state_reason: str | None
    state_at: float | None
    tokens: TokenSet = field(repr=False)
    created_at: float
    updated_at: float

    @property
    def name(self) -> str:
        """What the UI calls this account: label, else email, else the account id's first 8 chars."""
        return self.label or self.email or self.identity.chatgpt_account_id[:8]

    @property
    def role(self) -> str:
        return "primary" if self.primary else "pool"


@dataclass(frozen=True)
class Window:
    """One rate-limit window as upstream reports it (usage payload, headers or stream event)."""

    used_percent: float | None
    window_seconds: float | None  # limit_window_seconds: the window's length
    reset_after_seconds: float | None  # seconds until reset, measured when the payload was produced
    reset_at: float | None = None  # absolute epoch seconds, when upstream gives it


@dataclass(frozen=True)
class Usage:
    """The parts of a ``wham/usage`` payload that routing reads. ``primary``/``secondary`` are the
    upstream slot names; routing classifies windows by ``window_seconds``, never by slot."""

    plan_type: str | None
    allowed: bool | None
    limit_reached: bool | None
    primary: Window | None
    secondary: Window | None
    account_id: str | None = None
    # When a blocked limit lifts (epoch seconds), when a 429 body said so and no window tells.
    blocked_until: float | None = None

    @property
    def blocked(self) -> bool:
        return self.allowed is False or self.limit_reached is True


@dataclass(frozen=True)
class QuotaEntry:
    """A cached usage payload as stored (raw JSON text) with the time it was observed."""

    account_id: int
    raw: str
    updated_at: float


@dataclass(frozen=True)
class UsageSample:
    """One observation of one account's rate-limit window, as the usage history keeps it."""

    account_id: int
    window_seconds: float  # the window's length: what names it (5h, weekly), never its slot
    used_percent: float
    reset_at: float | None  # epoch seconds, when known
    source: str  # "usage" (a usage fetch), "headers", "event" (codex.rate_limits) or "429"
    at: float  # epoch seconds when it was observed


@dataclass(frozen=True)
class Cooldown:
    account_id: int
    until: float
    status: int  # HTTP status that caused it (429, 5xx, 0 for transport errors)
    reason: str
    source: str  # where the duration came from: "body", "headers", "retry-after", "usage", "default"


@dataclass(frozen=True)
class CandidateScore:
    account_id: int
    name: str
    score: float | None  # None = unknown (cold or unscorable usage)


@dataclass(frozen=True)
class Decision:
    """One routing decision, as shown in the activity view. Never holds a secret."""

    at: float
    account_id: int | None
    account_name: str | None
    reason: str
    scores: tuple[CandidateScore, ...]
    fast_note: str | None
    cache_age: float | None  # seconds, of the chosen account's usage entry
    status: int | None  # HTTP status returned to the client
    latency_ms: float | None
    route: str = ""


# --- Events: what the engine tells the user about (desktop notifications in the tray, stderr
# headless). Sinks are called from any thread and must not block.


@dataclass(frozen=True)
class ConfigInvalid:
    path: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class NeedsLogin:
    account_id: int
    name: str
    reason: str


@dataclass(frozen=True)
class PoolExhausted:
    soonest_reset: float | None  # epoch seconds


@dataclass(frozen=True)
class PoolAvailable:
    account_id: int | None = None  # the account that served again first
    name: str | None = None


@dataclass(frozen=True)
class QuotaLow:
    account_id: int
    name: str
    percent_left: float


Event = ConfigInvalid | NeedsLogin | PoolExhausted | PoolAvailable | QuotaLow
EventSink = Callable[[Event], None]


# ---- settings (read and checked by tray.config) --------------------------------------------------

Mode = Literal["auto", "always", "disabled"]
DormantTouch = Literal["always", "new-session-only", "disabled"]
LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class Notifications:
    """Which desktop notifications are on (each kind fires once per episode)."""

    config_invalid: bool = True
    needs_login: bool = True
    pool_exhausted: bool = True
    pool_available: bool = True
    quota_low: bool = False
    forecast: bool = True

    def enabled(self, kind: str) -> bool:
        """``kind`` as in the file (``needs-login``) or as an attribute (``needs_login``)."""
        return bool(getattr(self, kind.replace("-", "_")))


@dataclass(frozen=True)
class Config:
    fast_mode: Mode = "auto"
    fast_mode_bias: float = 0.0
    sticky_mode: Mode = "auto"
    sticky_strength: float = 1.0
    dormant_touch: DormantTouch = "always"
    host: str = "127.0.0.1"
    port: int = 4455
    allow_remote: bool = False
    upstream_url: str = "https://chatgpt.com/backend-api"
    auth_url: str = "https://auth.openai.com"
    upstream_proxy: str = ""  # "": from HTTPS_PROXY/HTTP_PROXY/ALL_PROXY; "direct"; or a proxy URL
    max_body_mb: float = 64.0
    log_level: LogLevel = "info"
    quota_low_percent: float = 10.0
    notifications: Notifications = field(default_factory=Notifications)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)
