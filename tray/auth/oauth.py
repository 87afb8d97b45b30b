"""The OAuth client for auth.openai.com (or whatever ``auth-url`` points at): code exchange, refresh,
device authorization. httpx errors are converted here, every call has a time limit, and no message
ever carries a token.

Refresh failures are classified: :class:`PermanentRefreshError` when the refresh token is dead (the
user must sign in again), :class:`TransientRefreshError` for anything that may work later.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from tray import __version__
from tray.auth.claims import expiry
from tray.auth.pkce import CLIENT_ID, DEVICE_PAGE_PATH, DEVICE_REDIRECT_PATH
from tray.errors import AuthError, LoginError, PermanentRefreshError, TransientRefreshError
from tray.models import Clock, TokenSet

log = logging.getLogger(__name__)

DEFAULT_LIFETIME = 3600.0  # seconds, when the response has no expires_in and the JWT no exp
DEFAULT_TIMEOUT = 20.0  # seconds, whole call (connect + send + read)
DEVICE_DEFAULT_INTERVAL = 5.0
DEVICE_DEFAULT_TTL = 900.0
USER_AGENT = f"codex-pool/{__version__}"

# Codes that mean the refresh token (or the whole session) is gone for good.
PERMANENT_CODES = frozenset(
    {
        "invalid_grant",
        "refresh_token_reused",
        "refresh_token_expired",
        "refresh_token_invalidated",
        "token_invalidated",
        "token_expired",  # at refresh time this means the refresh token itself expired
        "token_revoked",
        "app_session_terminated",
        "account_session_expired",
        "account_deactivated",
        "account_suspended",
        "account_deleted",
    }
)


@dataclass(frozen=True)
class DeviceCode:
    device_auth_id: str
    user_code: str
    verification_url: str
    interval: float  # seconds between polls, as the server asked
    expires_at: float  # epoch seconds


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def error_code(body: Any) -> str | None:
    """The permanent-failure code carried by an error body, if any.

    Looks at ``error`` (a string or ``{code, type}``), ``code`` and ``error_description``.
    """
    if not isinstance(body, dict):
        return None
    candidates: list[str] = []
    err = body.get("error")
    if isinstance(err, str):
        candidates.append(err)
    elif isinstance(err, dict):
        candidates += [v for k in ("code", "type") if isinstance(v := err.get(k), str)]
    if isinstance(body.get("code"), str):
        candidates.append(body["code"])
    for code in candidates:
        if code in PERMANENT_CODES:
            return code
    description = body.get("error_description")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        description = f"{description or ''} {err['message']}"
    if isinstance(description, str):
        for code in sorted(PERMANENT_CODES, key=len, reverse=True):
            if code in description:
                return code
    return None


class OAuthClient:
    """Token endpoint and device authorization under ``auth_url`` (default https://auth.openai.com)."""

    def __init__(
        self, http: httpx.AsyncClient, auth_url: str, clock: Clock, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._http = http
        self.auth_url = auth_url.rstrip("/")
        self._clock = clock
        self.timeout = timeout

    async def _post(
        self, path: str, what: str, error: type[AuthError], timeout: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await self._http.post(self.auth_url + path, headers=headers, timeout=limit, **kwargs)
        except TimeoutError as exc:
            raise error(f"{what} timed out after {limit:g} s") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise error(f"{what} failed: {type(exc).__name__} reaching {self.auth_url}") from exc

    def _token_set(self, body: Any, previous_refresh: str | None = None) -> TokenSet | None:
        if not isinstance(body, dict):
            return None
        access = body.get("access_token")
        refresh = body.get("refresh_token") or previous_refresh
        id_token = body.get("id_token")
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            return None
        lifetime = body.get("expires_in")
        if isinstance(lifetime, str) and lifetime.strip().isdigit():
            lifetime = int(lifetime)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            exp = expiry(access)
            expires_at = exp if exp is not None else self._clock() + DEFAULT_LIFETIME
        else:
            expires_at = self._clock() + float(lifetime)
        return TokenSet(
            access_token=access,
            refresh_token=refresh,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            expires_at=expires_at,
        )

    async def exchange_code(self, code: str, verifier: str, redirect_uri: str) -> TokenSet:
        """Trade an authorization code for tokens; raises :class:`LoginError`."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": CLIENT_ID,
            "code_verifier": verifier,
        }
        response = await self._post("/oauth/token", "Token exchange", LoginError, data=form)
        body = _json(response)
        if not response.is_success:
            detail = error_code(body) or (body.get("error") if isinstance(body, dict) else None)
            suffix = f" ({detail})" if isinstance(detail, str) else ""
            raise LoginError(f"Token exchange failed: HTTP {response.status_code}{suffix}")
        tokens = self._token_set(body)
        if tokens is None:
            raise LoginError("Token exchange failed: the response had no usable tokens")
        return tokens

    async def refresh(self, refresh_token: str, *, timeout: float | None = None) -> TokenSet:
        """Redeem ``refresh_token`` (single use) for a new token set, giving up after ``timeout``
        seconds (default: the client's). The server may have redeemed the token even when the answer
        never arrives, so callers give a refresh a long bound (see :mod:`tray.auth.refresh`).

        When the response carries no new refresh token the old one is kept.
        """
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID}
        what = "Token refresh"
        response = await self._post("/oauth/token", what, TransientRefreshError, timeout, data=form)
        body = _json(response)
        status = response.status_code
        if response.is_success:
            tokens = self._token_set(body, previous_refresh=refresh_token)
            if tokens is None:
                raise TransientRefreshError("Token refresh failed: the response could not be read")
            return tokens
        code = error_code(body)
        if code is not None and 400 <= status < 500:
            raise PermanentRefreshError(f"Token refresh failed: {code} (HTTP {status})", code)
        raise TransientRefreshError(f"Token refresh failed: HTTP {status}")

    async def device_start(self) -> DeviceCode:
        """Ask for a device user code; raises :class:`LoginError`."""
        what = "Device authorization"
        response = await self._post(
            "/api/accounts/deviceauth/usercode", what, LoginError, json={"client_id": CLIENT_ID}
        )
        body = _json(response)
        if not response.is_success or not isinstance(body, dict):
            raise LoginError(f"Failed to start device authorization: HTTP {response.status_code}")
        device_auth_id, user_code = body.get("device_auth_id"), body.get("user_code")
        if not isinstance(device_auth_id, str) or not isinstance(user_code, str):
            raise LoginError("Failed to start device authorization: the response had no user code")
        interval = _seconds(body.get("interval"), DEVICE_DEFAULT_INTERVAL)
        ttl = _seconds(body.get("expires_in"), DEVICE_DEFAULT_TTL)
        return DeviceCode(
            device_auth_id=device_auth_id,
            user_code=user_code,
            verification_url=self.auth_url + DEVICE_PAGE_PATH,
            interval=max(interval, 1.0),
            expires_at=self._clock() + ttl,
        )

    async def device_poll(self, device: DeviceCode) -> TokenSet | None:
        """Poll once: ``None`` while the user has not approved yet, tokens once they have."""
        payload = {"device_auth_id": device.device_auth_id, "user_code": device.user_code}
        what = "Device authorization"
        response = await self._post("/api/accounts/deviceauth/token", what, LoginError, json=payload)
        if response.status_code in (403, 404):
            return None
        body = _json(response)
        if not response.is_success or not isinstance(body, dict):
            raise LoginError(f"Device authorization failed: HTTP {response.status_code}")
        code, verifier = body.get("authorization_code"), body.get("code_verifier")
        if not isinstance(code, str) or not isinstance(verifier, str):
            raise LoginError("Device authorization failed: the response had no authorization code")
        return await self.exchange_code(code, verifier, self.auth_url + DEVICE_REDIRECT_PATH)


def _seconds(value: object, default: float) -> float:
    """Parse a seconds value the way the server sends it (number or numeric string)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return default
        return parsed if parsed > 0 else default
    return default


__all__ = ["DeviceCode", "OAuthClient", "PermanentRefreshError", "TransientRefreshError", "error_code"]
