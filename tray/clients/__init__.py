"""Pointing Codex CLI and opencode at the proxy: pure text transforms of their config files
(:mod:`tray.clients.texts`) and the file side that applies and undoes them with backups.
"""

from __future__ import annotations

from tray.clients.files import KINDS, Kind, apply, config_path, is_applied, snippets, undo

__all__ = [
    "KINDS", "Kind", "apply", "config_path", "is_applied", "snippets", "undo",
]
