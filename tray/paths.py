"""Where codex-pool keeps its files, and the one way they are written.

``CODEX_POOL_HOME=<dir>`` puts config, data and logs under one folder (tests and side-by-side
instances use it); otherwise platformdirs decides, with the app name ``codex-pool``.
Folders that hold secrets are created 0700; secret files are written 0600 by their owners
(see :func:`write_secret`). Windows has no such modes: files inherit their folder's ACL, and the
default folders under ``%LOCALAPPDATA%`` are the user's alone; a ``CODEX_POOL_HOME`` folder that
codex-pool creates gets such an ACL explicitly (:func:`private_acl_command`).

Every file codex-pool writes in place (config, keys, the user's ``auth.json``, client configs,
autostart entries) goes through :func:`write_atomic`: a reader sees the old file or the new one,
never half of either, on every OS.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tray.errors import PoolError

APP_NAME = "codex-pool"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    log_dir: Path
    custom: bool = False  # chosen with CODEX_POOL_HOME (not the platform's default folders)

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
            created = not folder.exists()
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)
            if created and self.custom and sys.platform == "win32":
                _restrict(folder)
        return self


# Well-known SIDs: the folders under %LOCALAPPDATA% grant exactly these and the user.
SYSTEM_SID, ADMINISTRATORS_SID = "S-1-5-18", "S-1-5-32-544"


def private_acl_command(folder: Path, user: str) -> list[str]:
    """Windows: the ``icacls`` call that leaves ``folder`` (and everything created in it) to
    ``user``, SYSTEM and Administrators, inheriting nothing from the folder above."""
    grants = [f"{who}:(OI)(CI)F" for who in (user, f"*{SYSTEM_SID}", f"*{ADMINISTRATORS_SID}")]
    return ["icacls", str(folder), "/inheritance:r", *(arg for g in grants for arg in ("/grant:r", g)), "/q"]


def _restrict(folder: Path) -> None:
    import logging
    import subprocess

    domain, name = os.environ.get("USERDOMAIN", ""), os.environ.get("USERNAME", "")
    if not name:
        return
    user = f"{domain}\\{name}" if domain else name
    try:
        done = subprocess.run(private_acl_command(folder, user), capture_output=True, text=True, timeout=30,
                              check=False, creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except (OSError, subprocess.SubprocessError) as exc:
        done = None
        logging.getLogger(__name__).warning("Could not make %s private: %s", folder, exc)
    if done is not None and done.returncode != 0:
        logging.getLogger(__name__).warning("Could not make %s private: %s", folder, done.stderr.strip())


def user_home(environ: Mapping[str, str] | None = None, platform: str = sys.platform) -> Path:
    """The user's home folder as the clients find it: ``$HOME`` on POSIX; on Windows
    ``%USERPROFILE%`` (Python's own choice), never ``$HOME``, which Git Bash and MSYS set to a
    POSIX-looking path that Codex CLI and opencode do not use."""
    env = os.environ if environ is None else environ
    found = env.get("USERPROFILE") if platform == "win32" else env.get("HOME")
    return Path(found) if found else Path.home()


def resolve_paths(environ: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if environ is None else environ
    home = env.get("CODEX_POOL_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(config_dir=root, data_dir=root, log_dir=root / "logs", custom=True)
    import platformdirs

    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        log_dir=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )


# Windows refuses to replace a file that another process holds open without FILE_SHARE_DELETE
# (Codex CLI reading auth.json, an antivirus scan, an editor): ERROR_ACCESS_DENIED (5) or
# ERROR_SHARING_VIOLATION (32). Such holds are short, so the replace is tried again for a while.
SHARING_VIOLATIONS = frozenset({5, 32})
REPLACE_TRIES = 10  # waits of 0.02 s doubling to 0.5 s: about 2.6 s in all
REPLACE_FIRST_WAIT = 0.02
REPLACE_MAX_WAIT = 0.5


def replace_file(src: Path, dst: Path, *, sleep: Callable[[float], None] | None = None,
                 tries: int = REPLACE_TRIES) -> None:
    """``os.replace(src, dst)``, tried again while Windows reports a sharing violation. Any other
    error (and a sharing violation that outlasts the tries) is raised at once."""
    wait = REPLACE_FIRST_WAIT
    for attempt in range(1, tries + 1):
        try:
            os.replace(src, dst)
            return
        except PermissionError as exc:
            # ``winerror`` exists only on Windows: a POSIX EACCES/EPERM is never retried.
            if getattr(exc, "winerror", None) not in SHARING_VIOLATIONS or attempt == tries:
                raise
        (sleep or time.sleep)(wait)
        wait = min(wait * 2, REPLACE_MAX_WAIT)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable: the new directory entry survives a power cut. POSIX only
    (Windows cannot open a folder this way, and NTFS journals the rename); failures are ignored."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o600, keep_mode: bool = False,
                 platform: str = sys.platform) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) so that every reader sees the old
    file or the new one, on every OS.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the file is moved
    over ``path`` (retried on Windows sharing violations, see :func:`replace_file`); on POSIX the
    folder is synced too. The new file gets ``mode`` (or, with ``keep_mode``, the existing file's
    permissions): set when the file is created and again exactly on POSIX, whatever the umask; on
    Windows only the read-only bit exists, and files inherit their folder's ACL. A symlink at
    ``path`` is followed, so a linked dotfile stays a link. On any failure the old file is left as
    it was and no temporary file remains; the ``OSError`` is raised for the caller to word.
    """
    target = path.resolve() if path.is_symlink() else path
    if keep_mode:
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(target.stat().st_mode)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    # O_BINARY: without it Windows' C runtime turns every "\n" written into "\r\n".
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, mode)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if platform != "win32":
            os.chmod(tmp, mode)  # os.open's mode went through the umask; no os.fchmod (Windows < 3.13)
        replace_file(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    if platform != "win32":
        fsync_folder(target.parent)


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` atomically to ``path`` with mode 0600 (parent 0700)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, text, mode=0o600)
    except OSError as exc:
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
