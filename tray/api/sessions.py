"""Ways into the management API that put no long-lived secret in an address (pure state, clock
passed in, safe to call from any thread).

* **One-time codes.** The window address carries ``#code=...``: minted by the proxy (for the tray in
  process, for ``codex-pool status`` through the owner's challenge), good for :data:`CODE_TTL`
  seconds and one use. Browser history, a copied link or a squatter's page that reads it later get
  nothing.
* **Sessions.** The page trades its code for a session token, keeps it in memory only and sends it
  as ``X-Codex-Pool-Session``. A session ends after :data:`SESSION_IDLE` seconds unused and when the
  proxy stops. (Not a cookie: cookies are shared by every port of ``127.0.0.1``, so a page that
  another local user serves on some other port would be sent it.)
* **The owner's challenge.** The management token (the ``ui-token`` file, 0600) never
  crosses the wire for it. The CLI sends a nonce; the proxy answers with its own nonce and
  ``server_proof`` (an HMAC with the token, bound to the port it listens on), which shows the CLI
  that the listener is this pool's proxy and not a program squatting the port or relaying to the
  real one on another port. The CLI then answers ``client_proof`` over both nonces, which shows the
  proxy that the caller can read the owner's files; only then is a code minted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

CODE_TTL = 60.0  # seconds a window code is good for
SESSION_IDLE = 12 * 3600.0  # seconds a session lives without a request
CHALLENGE_TTL = 30.0  # seconds between the owner's hello and its answer
MAX_CODES = 32  # outstanding codes, sessions and challenges kept (oldest dropped first)
MAX_SESSIONS = 16
MAX_CHALLENGES = 64


def _mac(key: str, *parts: str) -> str:
    return hmac.new(key.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def server_proof(key: str, port: int, client_nonce: str, server_nonce: str) -> str:
    """What the proxy listening on ``port`` answers to the owner's hello."""
    return _mac(key, "codex-pool proxy", str(port), client_nonce, server_nonce)


def client_proof(key: str, port: int, client_nonce: str, server_nonce: str) -> str:
    """What the owner's CLI answers to the proxy's nonce to be given a window code."""
    return _mac(key, "codex-pool owner", str(port), client_nonce, server_nonce)


def same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class _Expiring:
    """Values that expire, oldest first, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def put(self, key: str, until: float, value: str = "") -> None:
        self.items[key] = (until, value)
        self.items.move_to_end(key)
        while len(self.items) > self.limit:
            self.items.popitem(last=False)

    def take(self, key: str, now: float) -> str | None:
        found = self.items.pop(key, None)
        return found[1] if found is not None and found[0] > now else None

    def alive(self, key: str, now: float) -> bool:
        found = self.items.get(key)
        if found is None or found[0] <= now:
            self.items.pop(key, None)
            return False
        return True


class Sessions:
    """The codes, sessions and pending challenges of one running proxy."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # the tray's worker mints; the proxy's loop redeems
        self._codes = _Expiring(MAX_CODES)
        self._sessions = _Expiring(MAX_SESSIONS)
        self._challenges = _Expiring(MAX_CHALLENGES)

    def mint(self) -> str:
        """A fresh one-time window code."""
        code = "cpc-" + secrets.token_urlsafe(24)
        with self._lock:
            self._codes.put(code, self._clock() + CODE_TTL)
        return code

    def redeem(self, code: str) -> str | None:
        """A new session for a code that is unused and unexpired (the code is spent either way)."""
        with self._lock:
            now = self._clock()
            if self._codes.take(code, now) is None:
                return None
            session = "cps-" + secrets.token_urlsafe(32)
            self._sessions.put(session, now + SESSION_IDLE)
            return session

    def unspent(self, code: str) -> bool:
        """Whether ``code`` is still waiting to be used (it is not used up by asking)."""
        with self._lock:
            return self._codes.alive(code, self._clock())

    def valid(self, session: str) -> bool:
        """Whether ``session`` is live; using it keeps it alive."""
        with self._lock:
            now = self._clock()
            if not self._sessions.alive(session, now):
                return False
            self._sessions.put(session, now + SESSION_IDLE)
            return True

    def challenge(self, client_nonce: str) -> str:
        """Remember the owner's hello; returns the proxy's nonce for it."""
        server_nonce = secrets.token_urlsafe(24)
        with self._lock:
            self._challenges.put(server_nonce, self._clock() + CHALLENGE_TTL, client_nonce)
        return server_nonce

    def answer(self, server_nonce: str) -> str | None:
        """The client nonce of a pending hello (each hello is answered once)."""
        with self._lock:
            return self._challenges.take(server_nonce, self._clock())
