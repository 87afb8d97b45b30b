"""Where codex-pool keeps its files.

``CODEX_POOL_HOME=<dir>`` puts config, data and logs under one folder (tests and side-by-side
instances use it); otherwise platformdirs decides, with the app name ``codex-pool``.
Folders that hold secrets are created 0700; secret files are written 0600 by their owners
(see :func:`write_secret`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tray.errors import PoolError

APP_NAME = "codex-pool"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    log_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def db_file(self) -> Path:
        return self.data_dir / "pool.db"

    @property
    def api_key_file(self) -> Path:
        """The local client key (clients send it as Bearer / x-api-key)."""
        return self.data_dir / "api-key"

    @property
    def ui_token_file(self) -> Path:
        """The management token: the owner's own scripts may send it to the management API, and it
        keys the owner's challenge (:mod:`tray.api.sessions`); never put in an address, never accepted
        by the proxy routes."""
        return self.data_dir / "ui-token"

    @property
    def instance_file(self) -> Path:
        """Written by the running tray/serve process: its pid and proxy URL."""
        return self.data_dir / "instance.json"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "codex-pool.log"

    @property
    def backup_dir(self) -> Path:
        return self.data_dir / "backups"

    def ensure(self) -> Paths:
        """Create the folders (0700: they hold tokens and keys). ``backups/`` too, here, because
        its writers would otherwise create it with the umask's mode; an existing one is made
        private again."""
        for folder in (self.config_dir, self.data_dir, self.log_dir, self.backup_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)
        return self


def resolve_paths(environ: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if environ is None else environ
    home = env.get("CODEX_POOL_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(config_dir=root, data_dir=root, log_dir=root / "logs")
    import platformdirs

    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        log_dir=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` atomically to ``path`` with mode 0600 (parent 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        os.chmod(path, 0o600)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PoolError(f"Could not write {path}: {exc.strerror or exc}") from exc


def read_or_create_secret(path: Path, prefix: str) -> str:
    """Return the secret stored at ``path``, generating ``<prefix><random>`` the first time."""
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PoolError(f"Could not read {path}: {exc.strerror or exc}") from exc
    value = prefix + secrets.token_urlsafe(32)
    write_secret(path, value + "\n")
    return value


def api_key(paths: Paths) -> str:
    return read_or_create_secret(paths.api_key_file, "cp-")


def ui_token(paths: Paths) -> str:
    """The management token. Earlier versions' tokens (``cpui-``) went into window addresses, and
    so into browser history: such a token is replaced, never reused, so a copy of it is dead."""
    token = read_or_create_secret(paths.ui_token_file, "cpmt-")
    if token.startswith("cpui-"):
        token = "cpmt-" + secrets.token_urlsafe(32)
        write_secret(paths.ui_token_file, token + "\n")
    return token
