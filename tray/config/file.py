"""Reading and saving ``config.toml``: the thin I/O around the pure key table and text.

Reading never fails for bad content: each bad key is a :class:`~tray.config.keys.Problem` and
falls back alone, a file that cannot be read or parsed gives all defaults and one problem naming
it. Only :func:`save_config` raises: a save the user asked for must not write a bad value, and it
edits the user's file in place (comments, order and layout kept) instead of re-rendering it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tray.config.keys import Problem, show, validate, value_of
from tray.config.text import edit, render_config
from tray.errors import ConfigError, SettingsRejected
from tray.models import Config
from tray.paths import write_atomic

NOTIFICATIONS = "notifications"


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    problems: tuple[Problem, ...]
    path: Path

    @property
    def messages(self) -> tuple[str, ...]:
        """Each problem as the sentence the user reads (notification, stderr, window)."""
        return tuple(str(p) for p in self.problems)


def load_config(path: Path) -> LoadedConfig:
    """Read ``path``; write a commented default file first when it is missing.

    Never raises for bad content: an unreadable or invalid file gives all defaults and one problem
    naming the file, and the file is left untouched.
    """
    try:
        data = _read(path)
    except FileNotFoundError:
        try:
            _write(path, render_config(Config()))
        except OSError as exc:
            problem = Problem("", f"Could not create {path}: {exc.strerror or exc}", Config())
            return LoadedConfig(Config(), (problem,), path)
        return LoadedConfig(Config(), (), path)
    except ConfigError as exc:
        return LoadedConfig(Config(), (Problem("", str(exc), Config()),), path)
    config, problems = validate(data)
    return LoadedConfig(config, tuple(problems), path)


def save_config(path: Path, updates: Mapping[str, Any]) -> LoadedConfig:
    """Apply ``updates`` (kebab-case keys; ``notifications`` as a table or dotted keys) to the file.

    Validates first: if an updated key is bad, raises :class:`SettingsRejected` naming each one and
    writes nothing. Otherwise edits the file atomically, changing only the keys whose value changes
    (a missing file is first written with the commented defaults), and returns the result as
    :func:`load_config` would. :class:`ConfigError` when the file cannot be read, parsed or written.
    """
    try:
        text = _read_text(path)
        current = _parse(path, text)
    except FileNotFoundError:
        text, current = None, {}
    requested = _flatten(updates)
    merged: dict[str, Any] = dict(current)
    table = current.get(NOTIFICATIONS)
    switches: dict[str, Any] = dict(table) if isinstance(table, Mapping) else {}
    for name, value in requested.items():
        if name.startswith(f"{NOTIFICATIONS}."):
            switches[name.split(".", 1)[1]] = value
        else:
            merged[name] = value
    if NOTIFICATIONS in current or switches:
        merged[NOTIFICATIONS] = switches
    touched = set(requested) | ({"host"} if "allow-remote" in requested else set())
    config, problems = validate(merged)
    refused = {p.key: _refusal(p) for p in problems if p.key in touched}
    if refused:
        raise SettingsRejected("Not saved: " + "; ".join(refused.values()), refused)
    before, stale = validate(current)
    stale_keys = {p.key for p in stale}
    # Only what changes is written: a value the file already holds (valid) stays as the user wrote it.
    changes = {name: value_of(config, name) for name in requested
               if {name, _parent(name)} & stale_keys or value_of(config, name) != value_of(before, name)}
    base = render_config(Config()) if text is None else text
    try:
        new = edit(base, changes)
    except ConfigError as exc:
        raise ConfigError(f"Not saved: {path}: {exc}") from exc
    if new != text:
        try:
            _write(path, new)
        except OSError as exc:
            raise ConfigError(f"Could not write {path}: {exc.strerror or exc}") from exc
    return LoadedConfig(config, tuple(problems), path)


def _flatten(updates: Mapping[str, Any]) -> dict[str, Any]:
    """``updates`` with a ``notifications`` table spread into dotted keys (a table that is not one
    is refused here, before anything is read into it)."""
    flat: dict[str, Any] = {}
    for name, value in updates.items():
        if name != NOTIFICATIONS:
            flat[name] = value
        elif isinstance(value, Mapping):
            flat.update({f"{NOTIFICATIONS}.{short}": on for short, on in value.items()})
        else:
            problem = Problem(NOTIFICATIONS, f'"{NOTIFICATIONS}" must be a table of true/false switches '
                                             f"(got {show(value)})")
            raise SettingsRejected(f"Not saved: {_refusal(problem)}", {NOTIFICATIONS: _refusal(problem)})
    return flat


def _parent(name: str) -> str | None:
    return name.split(".", 1)[0] if "." in name else None


def _refusal(problem: Problem) -> str:
    """A problem as a refused save says it: no fallback (nothing was used instead), one sentence."""
    message = problem.message
    return message[:1].upper() + message[1:] + "."


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"Could not read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML (it is not UTF-8 text)") from exc


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc})") from exc


def _read(path: Path) -> dict[str, Any]:
    """The parsed file; :class:`ConfigError` naming the file when it cannot be read or parsed."""
    return _parse(path, _read_text(path))


def _write(path: Path, text: str) -> None:
    """Write atomically (:func:`tray.paths.write_atomic`: the text's own line ends, byte for byte),
    keeping an existing file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, text, mode=0o644, keep_mode=True)

