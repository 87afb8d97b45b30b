"""Unsigned JWTs shaped like the ones auth.openai.com issues (tests only)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(b'sig')}"


def account_claims(
    account_id: str = "acc-1",
    subject: str = "user-1",
    email: str | None = "one@example.com",
    plan: str = "plus",
    expires_in: float = 3600,
    now: float | None = None,
) -> dict[str, Any]:
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": int(issued),
        "exp": int(issued + expires_in),
        "https://api.openai.com/auth": {
            "chatgpt_account_id": account_id,
            "chatgpt_plan_type": plan,
            "chatgpt_user_id": subject,
        },
    }
    if email is not None:
        claims["email"] = email
        claims["https://api.openai.com/profile"] = {"email": email, "email_verified": True}
    return claims
