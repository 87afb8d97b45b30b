"""The text of ``config.toml`` (pure): the commented file codex-pool writes when there is none, and
an edit of the user's own file that changes only the given keys.

An edit goes through tomlkit's document model, which keeps everything it is not asked to change:
comments (above a key and after its value), blank lines, key order, spacing, quoting, keys
codex-pool does not know. A key the file lacks is added after the file's last top-level key; a
notification switch goes into the file's ``notifications`` table (a ``[notifications]`` table,
dotted keys or an inline table alike), which is created at the end when there is none.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import tomlkit
from tomlkit.exceptions import TOMLKitError

from tray.config.keys import NOTIFICATION_SPEC, SPEC, value_of
from tray.errors import ConfigError
from tray.models import Config

HEADER = (
    "# codex-pool settings. Every key is optional; delete a line to get its default.",
    "# A bad value falls back to its default and is reported. Docs: docs/configuration.md",
)
NOTIFICATIONS = "notifications"


def toml_value(value: object) -> str:
    """``value`` as TOML text; a whole float is written without ``.0`` (``64``, not ``64.0``)."""
    return str(tomlkit.item(_plain(value)).as_string())


def _plain(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def render_config(config: Config) -> str:
    """The commented TOML text for ``config``: every key with its help text above it."""
    out = [*HEADER, ""]
    for key in SPEC:
        out += [f"# {text}" for text in key.help.splitlines()]
        out += [f"{key.name} = {toml_value(value_of(config, key.name))}", ""]
    out += ["# Desktop notifications, each on (true) or off (false).", f"[{NOTIFICATIONS}]"]
    for key in NOTIFICATION_SPEC:
        short = key.name.split(".", 1)[1]
        out += [f"# {key.help}", f"{short} = {toml_value(value_of(config, key.name))}"]
    return "\n".join(out) + "\n"


def edit(text: str, changes: Mapping[str, object]) -> str:
    """``text`` with each key of ``changes`` (documented names, switches dotted:
    ``notifications.quota-low``) set to its value, every other byte kept.

    Raises :class:`ConfigError` when tomlkit cannot take the text apart (the caller has already
    read it as TOML, so this is a file only one of the two parsers accepts).
    """
    try:
        doc = tomlkit.parse(text)
        switches: dict[str, object] = {}
        for name, value in changes.items():
            if name.startswith(f"{NOTIFICATIONS}."):
                switches[name.split(".", 1)[1]] = value
            else:
                doc[name] = _plain(value)
        if switches:
            table = doc.get(NOTIFICATIONS)
            if not isinstance(table, MutableMapping):  # missing, or a value that is no table
                if table is not None:
                    del doc[NOTIFICATIONS]
                doc[NOTIFICATIONS] = tomlkit.table()
                table = doc[NOTIFICATIONS]
            for short, value in switches.items():
                table[short] = _plain(value)
        return doc.as_string()
    except (TOMLKitError, ValueError) as exc:
        raise ConfigError(f"it could not be edited as TOML ({exc})") from exc
