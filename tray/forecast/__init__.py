"""Where the pool is heading: its used % per window from the usage history (:mod:`~tray.forecast.pool`),
the pace and runout forecast (:mod:`~tray.forecast.pace`, pure), and the outlook the surfaces show,
read from the pool file (:mod:`~tray.forecast.outlook`).
"""

from __future__ import annotations

from tray.forecast.outlook import (
    CSV_HEADER,
    MAX_HOURS,
    Report,
    chart_json,
    forecast_json,
    forecasts,
    report,
    status_text,
    usage_json,
    usage_rows,
)

__all__ = [
    "CSV_HEADER", "MAX_HOURS", "Report", "chart_json", "forecast_json", "forecasts", "report",
    "status_text", "usage_json", "usage_rows",
]
