"""The tray process: the app that wires engine, icon, notices and window; the menu model (pure); the
icon artwork; the pystray adapter; the pool window (a pywebview child process); one tray per pool.

The GUI modules load their toolkits lazily; ``codex-pool`` commands other than the tray never import
them.
"""

from __future__ import annotations

from tray.desktop.browser import system_opener

__all__ = ["system_opener"]
