"""Settings: ``config.toml`` read, checked and saved.

``keys`` holds the key table and :func:`validate` (pure), ``text`` the file's text (the commented
defaults, and an edit that keeps the user's comments and layout; pure), ``file`` the reading and
saving. Other rooms use what this face exports.
"""

from __future__ import annotations

from tray.config.file import LoadedConfig, load_config, save_config
from tray.config.keys import (
    KEYS,
    NOTIFICATION_SPEC,
    SPEC,
    Key,
    Problem,
    is_loopback,
    validate,
    value_of,
    without_credentials,
)
from tray.config.text import render_config

__all__ = [
    "KEYS", "NOTIFICATION_SPEC", "SPEC", "Key", "LoadedConfig", "Problem", "is_loopback", "load_config",
    "render_config", "save_config", "validate", "value_of", "without_credentials",
]
