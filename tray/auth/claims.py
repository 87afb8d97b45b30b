"""Read the claims of the JWTs auth.openai.com issues. Signatures are **not** verified: the tokens
come straight from the token endpoint over TLS (or from the user's own auth files) and are only used
to tell accounts apart and label them. Nothing here raises on junk input.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tray.models import Identity

AUTH_CLAIM = "https://api.openai.com/auth"
PROFILE_CLAIM = "https://api.openai.com/profile"


def decode_payload(token: str | None) -> dict[str, Any]:
    """The JSON payload of a JWT, or ``{}`` when ``token`` is not a three-part JWT with an object payload."""
    if not token or not isinstance(token, str):
        return {}
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    segment = parts[1]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _section(claims: dict[str, Any], key: str) -> dict[str, Any]:
    value = claims.get(key)
    return value if isinstance(value, dict) else {}


def account_id(claims: dict[str, Any]) -> str | None:
    """ChatGPT account (workspace) id: top-level, then the auth claim, then the first organization."""
    found = _text(claims.get("chatgpt_account_id")) or _text(
        _section(claims, AUTH_CLAIM).get("chatgpt_account_id")
    )
    if found:
        return found
    orgs = claims.get("organizations")
    if isinstance(orgs, list) and orgs and isinstance(orgs[0], dict):
        return _text(orgs[0].get("id"))
    return None


def subject(claims: dict[str, Any]) -> str | None:
    return _text(claims.get("sub")) or _text(_section(claims, AUTH_CLAIM).get("chatgpt_user_id"))


def email(claims: dict[str, Any]) -> str | None:
    return _text(claims.get("email")) or _text(_section(claims, PROFILE_CLAIM).get("email"))


def plan(claims: dict[str, Any]) -> str | None:
    return _text(_section(claims, AUTH_CLAIM).get("chatgpt_plan_type"))


def _first(getter: Any, *claim_sets: dict[str, Any]) -> str | None:
    for claims in claim_sets:
        value: str | None = getter(claims)
        if value:
            return value
    return None


def identity_and_meta(
    id_token: str | None, access_token: str | None
) -> tuple[Identity | None, str | None, str | None]:
    """``(identity, email, plan)`` from the id_token's claims, falling back to the access token's.

    The identity is ``None`` unless both the ChatGPT account id and the user subject are known.
    """
    id_claims = decode_payload(id_token)
    access_claims = decode_payload(access_token)
    acct = _first(account_id, id_claims, access_claims)
    sub = _first(subject, id_claims, access_claims)
    identity = Identity(chatgpt_account_id=acct, subject=sub) if acct and sub else None
    return identity, _first(email, id_claims, access_claims), _first(plan, id_claims, access_claims)


def expiry(token: str | None) -> float | None:
    """The ``exp`` claim (epoch seconds), or ``None`` when absent or not a number."""
    exp = decode_payload(token).get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)
