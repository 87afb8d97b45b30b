"""Fetch one account's quota from the usage endpoint: ``GET {upstream-url}/wham/usage``.

httpx errors become :class:`UsageFetchError` (an :class:`UpstreamError`) here; every call has a time
limit; messages never carry a token.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from tray.errors import UpstreamError
from tray.models import Account

log = logging.getLogger(__name__)

USAGE_TIMEOUT = httpx.Timeout(15.0, connect=10.0)


class UsageFetchError(UpstreamError):
    """The usage endpoint failed; ``status`` is the HTTP status, or 0 for transport errors."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def usage_url(upstream_url: str) -> str:
    return upstream_url.rstrip("/") + "/wham/usage"


async def fetch_usage(
    http: httpx.AsyncClient,
    upstream_url: str,
    account: Account,
    *,
    timeout: httpx.Timeout | float = USAGE_TIMEOUT,
) -> tuple[str, dict[str, Any]]:
    """Return ``(raw_json_text, payload)`` for ``account``; raise :class:`UsageFetchError`."""
    headers = {
        "Authorization": f"Bearer {account.tokens.access_token}",
        "Accept": "application/json",
    }
    if account.identity.chatgpt_account_id:
        headers["ChatGPT-Account-Id"] = account.identity.chatgpt_account_id
    try:
        response = await http.get(usage_url(upstream_url), headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise UsageFetchError(f"Usage request for {account.name} timed out") from exc
    except httpx.HTTPError as exc:
        raise UsageFetchError(f"Usage request for {account.name} failed: {type(exc).__name__}") from exc
    if not 200 <= response.status_code < 300:
        raise UsageFetchError(
            f"Usage request for {account.name} answered HTTP {response.status_code}", response.status_code
        )
    text = response.text or "{}"
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise UsageFetchError(f"Usage answer for {account.name} is not JSON", response.status_code) from exc
    if payload is None:
        payload, text = {}, "{}"
    if not isinstance(payload, dict):
        raise UsageFetchError(f"Usage answer for {account.name} is not an object", response.status_code)
    return text, payload
