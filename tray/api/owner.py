"""Is the program on the pool's port this pool's own proxy? The CLI's side of the owner's
challenge (:mod:`tray.api.sessions`), asked before ``status`` or ``setup`` hand out an address or key.

While codex-pool is not running, any local user can listen on its port. Whoever does would be sent
the local key and the prompts of every client pointed there, and the window code of any address
printed for it. So the CLI first sends a nonce; only this pool's proxy can answer with the HMAC of
it under the management token (a file only the owner can read), bound to the port asked. The token
itself never crosses the wire, and a squatter relaying to a real proxy on another port fails the
port binding.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

from tray.api.sessions import client_proof, same, server_proof
from tray.portholder import Holder, held_message, holder

TIMEOUT = 3.0  # seconds; the proxy answers at once, a silent listener is not ours


@dataclass(frozen=True)
class Probe:
    """``ours`` (with a window code when one was asked for), ``nobody`` listening, or ``other``."""

    state: Literal["ours", "nobody", "other"]
    port: int
    code: str | None = None
    holder: Holder | None = None

    @property
    def refusal(self) -> str:
        """What to tell the user when the port is held by another program."""
        return held_message(self.port, self.holder)


def probe(url: str, token: str, *, want_code: bool = False, timeout: float = TIMEOUT) -> Probe:
    """Ask the listener at ``url`` (``http://host:port``) to prove it is this pool's proxy."""
    port = urlsplit(url).port or 80
    nonce = secrets.token_urlsafe(24)
    try:
        with httpx.Client(base_url=url, timeout=timeout, trust_env=False, follow_redirects=False) as client:
            hello = client.post("/api/owner/hello", json={"nonce": nonce})
            theirs, proof = _field(hello, "nonce"), _field(hello, "proof") or ""
            if theirs is None or not same(proof, server_proof(token, port, nonce, theirs)):
                return Probe("other", port, holder=holder(port))
            if not want_code:
                return Probe("ours", port)
            answer = client.post("/api/owner/code",
                                 json={"nonce": theirs, "proof": client_proof(token, port, nonce, theirs)})
            return Probe("ours", port, code=_field(answer, "code"))
    except httpx.ConnectError:
        return Probe("nobody", port)
    except httpx.HTTPError:
        return Probe("other", port, holder=holder(port))


def _field(answer: httpx.Response, name: str) -> str | None:
    if answer.status_code != 200:
        return None
    try:
        value = answer.json().get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None
