"""Telling the user: when to (alert rules, once per episode) and how (desktop pop-ups in the tray,
stderr lines headless).
"""

from __future__ import annotations

from tray.notices.alerts import KINDS, OPEN_CONFIG, OPEN_WINDOW, RELOGIN, Alerts, Notice
from tray.notices.delivery import DesktopNotifier, Notifier

__all__ = [
    "KINDS", "OPEN_CONFIG", "OPEN_WINDOW", "RELOGIN", "Alerts", "DesktopNotifier", "Notice", "Notifier",
]
