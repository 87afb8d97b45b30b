"""Quota: usage payloads and live signals (headers, ``codex.rate_limits`` events, 429 bodies) as
pure functions, the usage endpoint fetcher, and the quota service that keeps the shared cache warm.
"""

from __future__ import annotations

from tray.quota.service import QuotaService
from tray.quota.usage import (
    UsageView,
    anchor,
    by_length,
    parse_usage,
    shown_usage,
    usage_view,
    window_name,
)

__all__ = [
    "QuotaService", "UsageView", "anchor", "by_length", "parse_usage", "shown_usage", "usage_view",
    "window_name",
]
