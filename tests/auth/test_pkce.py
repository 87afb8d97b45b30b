from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import parse_qsl, urlsplit

from tray.auth import pkce


def test_verifier_is_43_unreserved_characters_and_fresh_each_time() -> None:
    verifiers = {pkce.make_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for verifier in verifiers:
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43}", verifier)


def test_challenge_is_unpadded_base64url_sha256() -> None:
    # RFC 7636 appendix B example
    assert pkce.challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    verifier = pkce.make_verifier()
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert pkce.challenge(verifier) == expected


def test_state_is_43_url_safe_characters() -> None:
    state = pkce.make_state()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", state)
    assert state != pkce.make_state()


def test_authorize_url_carries_every_parameter_in_order() -> None:
    url = pkce.authorize_url("https://auth.example.test/", "CHAL", "STATE", pkce.redirect_uri(1455))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://auth.example.test/oauth/authorize"
    assert parse_qsl(parts.query) == [
        ("response_type", "code"),
        ("client_id", "app_EMoamEEZ73f0CkXaXp7hrann"),
        ("redirect_uri", "http://localhost:1455/auth/callback"),
        ("scope", "openid profile email offline_access"),
        ("code_challenge", "CHAL"),
        ("code_challenge_method", "S256"),
        ("id_token_add_organizations", "true"),
        ("codex_cli_simplified_flow", "true"),
        ("state", "STATE"),
        ("originator", "codex_cli_rs"),
    ]
    assert "scope=openid+profile+email+offline_access" in url


def test_redirect_uri_names_the_actual_port() -> None:
    assert pkce.redirect_uri(40123) == "http://localhost:40123/auth/callback"
