"""Point Codex CLI and opencode at the proxy, and take it back out: the file side of client setup.

:func:`apply` edits the client's config file (text transforms in :mod:`tray.clients.texts`), after
saving a copy of the file as it was in ``Paths.backup_dir``. :func:`undo` puts that copy back byte
for byte, or removes the file when setup created it. When the user edited the file after setup,
the copy would throw those edits away, so undo then takes out only codex-pool's settings and keeps
the copy for reference. Nothing is written when the file cannot be parsed or read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from tray.clients import texts as clientconfig
from tray.errors import ClientSetupError
from tray.paths import Paths, resolve_paths, user_home, write_atomic

Kind = Literal["codex", "opencode"]
KINDS: tuple[Kind, ...] = ("codex", "opencode")
snippets = clientconfig.snippets


@dataclass(frozen=True)
class SetupResult:
    kind: Kind
    path: Path  # the client's config file
    changed: bool
    message: str  # one line for the user
    backup: Path | None = None  # the saved copy, while one is kept
    notes: tuple[str, ...] = field(default=())


def _home(env: Mapping[str, str]) -> Path:
    return user_home(env)


def config_path(kind: Kind, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if kind == "codex":
        return Path(env.get("CODEX_HOME") or _home(env) / ".codex") / "config.toml"
    if kind == "opencode":
        xdg = env.get("XDG_CONFIG_HOME") or ""
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else _home(env) / ".config"
        return base / "opencode" / "opencode.json"
    raise ClientSetupError(f"Unknown client {kind!r}: choose codex or opencode")


def opencode_auth_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME") or ""
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else _home(env) / ".local" / "share"
    return base / "opencode" / "auth.json"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClientSetupError(f"Could not read {path}: {exc.strerror or exc}; nothing was changed") from exc


def _decode(data: bytes | None, path: Path) -> str:
    try:
        return "" if data is None else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientSetupError(f"{path} is not UTF-8 text; nothing was changed") from exc


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically (through a symlink to its target, so dotfile links survive)."""
    try:
        (path.resolve() if path.is_symlink() else path).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, mode=mode)
    except OSError as exc:
        raise ClientSetupError(f"Could not write {path}: {exc.strerror or exc}; nothing was changed") from exc


def _sha(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


class _Saved:
    """The copy of the file from before setup plus what undo needs to know, in ``backup_dir``."""

    def __init__(self, paths: Paths, kind: Kind, path: Path) -> None:
        self.copy = paths.backup_dir / f"{kind}-{path.name}.bak"
        self.state_file = paths.backup_dir / f"{kind}-setup.json"
        self.path = path

    def state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("path") != str(self.path):
            return None  # saved for another CODEX_HOME / config folder
        return state

    def save(self, original: bytes | None, mode: int | None, previous: dict[str, Any]) -> None:
        if original is not None:
            _write(self.copy, original, 0o600)
        self._write_state(
            {
                "path": str(self.path),
                "existed": original is not None,
                "mode": mode,
                "previous": previous,
                "written": None,
            }
        )

    def _write_state(self, state: dict[str, Any]) -> None:
        _write(self.state_file, (json.dumps(state, indent=2) + "\n").encode(), 0o600)

    def mark_written(self, state: dict[str, Any], data: bytes) -> None:
        self._write_state({**state, "written": _sha(data)})

    def forget(self, keep_copy: bool = False) -> None:
        for file in (self.state_file,) if keep_copy else (self.state_file, self.copy):
            with contextlib.suppress(OSError):
                file.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Format:
    """The text transforms for one client's config file (see :mod:`tray.clients.texts`)."""

    apply: Callable[..., str]  # (text, proxy_url, key, where=) -> text
    applied: Callable[[str, str | None], bool]
    previous: Callable[..., Any]  # (text, where=) -> what setup replaces
    remove: Callable[..., str]  # (text, previous, where=) -> text
    previous_type: type[Any]


FORMATS: dict[Kind, _Format] = {
    "codex": _Format(
        clientconfig.codex_apply,
        clientconfig.codex_applied,
        clientconfig.codex_previous,
        clientconfig.codex_remove,
        clientconfig.CodexPrevious,
    ),
    "opencode": _Format(
        clientconfig.opencode_apply,
        clientconfig.opencode_applied,
        clientconfig.opencode_previous,
        clientconfig.opencode_remove,
        clientconfig.OpencodePrevious,
    ),
}


def _nothing(fmt: _Format) -> Any:
    """ "Nothing was there before setup": every field of the format's previous-values record None."""
    return fmt.previous_type(*[None] * len(fields(fmt.previous_type)))


def _notes(kind: Kind, environ: Mapping[str, str] | None) -> tuple[str, ...]:
    if kind == "codex":
        return (
            "Restart Codex CLI to pick this up. `codex resume` lists sessions per provider, so "
            "sessions started before setup show up again after `codex-pool setup codex --undo`.",
        )
    auth = opencode_auth_path(environ)
    try:
        signed_in = clientconfig.opencode_oauth_login(auth.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        signed_in = False
    if not signed_in:
        return ("Restart opencode to pick this up.",)
    return (
        f'opencode is signed in to ChatGPT (the "openai" entry in {auth}); that login talks to '
        "ChatGPT directly and skips codex-pool. To route opencode through the pool, run "
        "`opencode auth logout` and choose OpenAI (codex-pool keeps its own copy of the account).",
    )


def apply(
    kind: Kind,
    proxy_url: str,
    key: str,
    paths: Paths | None = None,
    environ: Mapping[str, str] | None = None,
) -> SetupResult:
    """Point ``kind`` at ``proxy_url`` with the local ``key``; save the file as it was first."""
    path = config_path(kind, environ)
    saved = _Saved((paths or resolve_paths(environ)).ensure(), kind, path)
    fmt = FORMATS[kind]
    original = _read(path)
    text = _decode(original, path)
    new = fmt.apply(text, proxy_url, key, where=str(path)).encode("utf-8")
    notes = _notes(kind, environ)
    if new == original:
        return SetupResult(
            kind,
            path,
            False,
            f"{path} already points at codex-pool; nothing changed.",
            saved.copy if saved.copy.exists() else None,
            notes,
        )
    state = saved.state()
    if state is None or not fmt.applied(text, None):
        # First change (or the earlier setup was taken out by hand): keep the file as it is now.
        mode = path.stat().st_mode & 0o777 if original is not None else None
        saved.save(original, mode, asdict(fmt.previous(text, where=str(path))))
        state = saved.state()
        assert state is not None
    # The file now holds the local key: readable by its owner only (undo restores the old mode).
    mode = (state["mode"] & 0o700 if isinstance(state.get("mode"), int) else 0o600) | 0o600
    try:
        _write(path, new, mode)
    except ClientSetupError:
        if state.get("written") is None:
            saved.forget()
        raise
    saved.mark_written(state, new)
    backup = saved.copy if state.get("existed") else None
    verb = "Updated" if original is not None else "Created"
    message = f"{verb} {path}: set {clientconfig.describe(kind, proxy_url)}."
    return SetupResult(kind, path, True, message, backup, notes)


def undo(kind: Kind, paths: Paths | None = None, environ: Mapping[str, str] | None = None) -> SetupResult:
    """Take codex-pool out of ``kind``'s config: the saved file back byte for byte when possible."""
    path = config_path(kind, environ)
    saved = _Saved((paths or resolve_paths(environ)).ensure(), kind, path)
    fmt = FORMATS[kind]
    current = _read(path)
    state = saved.state()
    if state is not None and state.get("written") is not None and _sha(current) == state["written"]:
        if state.get("existed"):
            original = _read(saved.copy)
            if original is None:
                raise ClientSetupError(f"The saved copy {saved.copy} is missing; nothing was changed")
            _write(path, original, state["mode"] if isinstance(state.get("mode"), int) else 0o600)
            message = f"Restored {path} as it was before setup."
        else:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise ClientSetupError(f"Could not remove {path}: {exc.strerror or exc}") from exc
            message = f"Removed {path}: setup had created it."
        saved.forget()
        return SetupResult(kind, path, True, message)
    text = _decode(current, path)
    if current is None or not fmt.applied(text, None):
        saved.forget(keep_copy=True)
        return SetupResult(kind, path, False, f"{path} does not use codex-pool; nothing to undo.")
    saved_previous = state.get("previous") if state else None
    previous = fmt.previous_type(**saved_previous) if isinstance(saved_previous, dict) else _nothing(fmt)
    new = fmt.remove(text, previous, where=str(path)).encode("utf-8")
    old_mode = state.get("mode") if state else None
    _write(path, new, old_mode if isinstance(old_mode, int) else path.stat().st_mode & 0o777)
    saved.forget(keep_copy=True)
    backup = saved.copy if saved.copy.exists() else None
    note = (
        (
            f"The file changed after setup, so only codex-pool's settings were taken out; "
            f"the copy from before setup is kept at {backup}."
        )
        if backup
        else ""
    )
    return SetupResult(
        kind, path, True, f"Took codex-pool's settings out of {path}.", backup, (note,) if note else ()
    )


def is_applied(kind: Kind, proxy_url: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``kind``'s config currently points at codex-pool (at ``proxy_url`` when given)."""
    path = config_path(kind, environ)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return FORMATS[kind].applied(text, proxy_url)
