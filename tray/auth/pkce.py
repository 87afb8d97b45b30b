"""PKCE (RFC 7636, S256), login state and the authorize URL, as the official Codex client builds them.

Pure functions; randomness comes from :mod:`secrets`. The OAuth constants live here because the
authorize URL is the first place they are needed; :mod:`tray.auth.oauth` imports them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
SCOPE = "openid profile email offline_access"
ORIGINATOR = "codex_cli_rs"
CALLBACK_PORT = 1455
CALLBACK_PATH = "/auth/callback"
DEVICE_REDIRECT_PATH = "/deviceauth/callback"
DEVICE_PAGE_PATH = "/codex/device"

# RFC 7636 "unreserved" characters: A-Z a-z 0-9 - . _ ~
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
VERIFIER_LENGTH = 43


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_verifier() -> str:
    """A fresh 43-character code verifier (``secrets.choice``: no modulo bias)."""
    return "".join(secrets.choice(_UNRESERVED) for _ in range(VERIFIER_LENGTH))


def challenge(verifier: str) -> str:
    """The S256 code challenge: base64url(SHA-256(verifier)) without padding."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def make_state() -> str:
    """A fresh login state: base64url of 32 random bytes (43 characters)."""
    return _b64url(secrets.token_bytes(32))


def redirect_uri(port: int = CALLBACK_PORT) -> str:
    """The loopback redirect URI registered for the Codex client (``localhost``, as it is registered)."""
    return f"http://localhost:{port}{CALLBACK_PATH}"


def authorize_url(auth_url: str, code_challenge: str, state: str, redirect: str) -> str:
    """``<auth_url>/oauth/authorize?...`` with every parameter the official client sends, in its order."""
    params = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", redirect),
        ("scope", SCOPE),
        ("code_challenge", code_challenge),
        ("code_challenge_method", "S256"),
        ("id_token_add_organizations", "true"),
        ("codex_cli_simplified_flow", "true"),
        ("state", state),
        ("originator", ORIGINATOR),
    ]
    return f"{auth_url.rstrip('/')}/oauth/authorize?{urlencode(params)}"
