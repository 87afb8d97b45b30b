"""Accounts' credentials: PKCE and the OAuth client for auth.openai.com, JWT claims, the browser and
device-code sign-in flows, token refresh (the cross-process lease, storing an answered token set),
and the user's own Codex/opencode ``auth.json`` files.
"""

from __future__ import annotations

from tray.auth.files import PrimarySync, import_primary
from tray.auth.login import LoginService
from tray.auth.oauth import OAuthClient
from tray.auth.refresh import TIMER_INTERVAL, Refresher

__all__ = [
    "TIMER_INTERVAL", "LoginService", "OAuthClient", "PrimarySync", "Refresher", "import_primary",
]
