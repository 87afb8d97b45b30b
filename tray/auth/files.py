"""The user's own logins: Codex CLI's and opencode's ``auth.json``.

The primary account is the one those clients are signed into. On first start it is imported from
them; afterwards :class:`PrimarySync` keeps them in two-way sync, because refresh tokens are single
use: whoever refreshes must hand the new tokens to everybody else, or the next refresh elsewhere
burns the family (``refresh_token_reused``).

* Codex CLI: ``$CODEX_HOME/auth.json`` (default ``~/.codex``):
  ``{"OPENAI_API_KEY": null, "auth_mode": "chatgpt", "tokens": {"id_token", "access_token",
  "refresh_token", "account_id"}, "last_refresh": "<RFC 3339>"}``.
* opencode: ``$XDG_DATA_HOME/opencode/auth.json`` (default ``~/.local/share``), provider ``openai``:
  ``{"type": "oauth", "refresh", "access", "expires": <epoch ms>, "accountId"}``.

Writes are atomic (temp file + rename in the same folder) and keep every other field and the mode.
A malformed file raises :class:`AuthFileError` naming it and is never touched.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tray.auth.claims import expiry, identity_and_meta
from tray.errors import AuthFileError
from tray.models import Account, Clock, Identity, TokenSet
from tray.paths import user_home, write_atomic

log = logging.getLogger(__name__)


class AccountStore(Protocol):
    """The part of :class:`tray.store.accounts.Store` this module uses."""

    def accounts(self, include_inactive: bool = True) -> list[Account]: ...
    def get(self, account_id: int) -> Account | None: ...
    def save_login(
        self,
        identity: Identity,
        tokens: TokenSet,
        email: str | None,
        plan: str | None,
        make_primary: bool = ...,
    ) -> Account: ...
    def update_tokens(
        self, account_id: int, tokens: TokenSet, expected_refresh_token: str | None = ...
    ) -> bool: ...


@dataclass(frozen=True)
class FileLogin:
    """A ChatGPT login found in one auth file."""

    path: Path
    kind: str  # "codex" or "opencode"
    identity: Identity | None
    email: str | None
    plan: str | None
    tokens: TokenSet


def codex_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    home = env.get("CODEX_HOME") or str(user_home(env) / ".codex")
    return Path(home).expanduser()


def codex_auth_path(environ: Mapping[str, str] | None = None) -> Path:
    return codex_home(environ) / "auth.json"


def opencode_auth_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    data = env.get("XDG_DATA_HOME") or str(user_home(env) / ".local" / "share")
    return Path(data).expanduser() / "opencode" / "auth.json"


def keyring_note(environ: Mapping[str, str] | None = None) -> str | None:
    """Codex CLI set to keep its login in the system keyring (``cli_auth_credentials_store`` =
    ``keyring``, or ``auto`` with no ``auth.json``) leaves no file to import or keep in sync: the
    sentence that says so, or ``None``."""
    config = codex_home(environ) / "config.toml"
    try:
        store = tomllib.loads(config.read_text(encoding="utf-8")).get("cli_auth_credentials_store")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if store not in ("keyring", "auto") or codex_auth_path(environ).exists():
        return None
    return (f"Codex CLI keeps its login in the system keyring (cli_auth_credentials_store = \"{store}\" "
            f"in {config}), so there is no auth.json to import or keep in sync: add that account with "
            "'codex-pool login' (or Add account in the tray)")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthFileError(f"Could not read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AuthFileError(f"{path} is not valid JSON (line {getattr(exc, 'lineno', '?')})") from exc
    if not isinstance(data, dict):
        raise AuthFileError(f"{path} does not hold a JSON object")
    return data


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _login(path: Path, kind: str, access: str, refresh: str, id_token: str | None, exp: float) -> FileLogin:
    identity, email, plan = identity_and_meta(id_token, access)
    return FileLogin(path, kind, identity, email, plan, TokenSet(access, refresh, id_token, exp))


def read_codex(path: Path) -> FileLogin | None:
    """The ChatGPT login in a Codex CLI ``auth.json``; ``None`` when absent or an API-key login."""
    data = _load(path)
    if data is None:
        return None
    tokens = data.get("tokens")
    if tokens is None:
        return None
    if not isinstance(tokens, dict):
        raise AuthFileError(f"{path}: 'tokens' is not an object")
    access, refresh = _text(tokens.get("access_token")), _text(tokens.get("refresh_token"))
    if access is None or refresh is None:
        return None
    id_token = tokens.get("id_token")
    if isinstance(id_token, dict):  # some CLI versions stored the parsed token next to the raw JWT
        id_token = id_token.get("raw_jwt")
    refreshed = _parse_time(data.get("last_refresh"))
    exp = expiry(access) or (refreshed + 3600 if refreshed else 0.0)
    return _login(path, "codex", access, refresh, _text(id_token), exp)


def read_opencode(path: Path) -> FileLogin | None:
    """The ``openai`` OAuth entry of an opencode ``auth.json``; ``None`` when absent or not OAuth."""
    data = _load(path)
    if data is None:
        return None
    entry = data.get("openai")
    if not isinstance(entry, dict) or entry.get("type") != "oauth":
        return None
    access, refresh = _text(entry.get("access")), _text(entry.get("refresh"))
    if access is None or refresh is None:
        return None
    expires = entry.get("expires")
    exp = None
    if isinstance(expires, int | float) and not isinstance(expires, bool) and math.isfinite(expires):
        exp = float(expires) / 1000
    return _login(path, "opencode", access, refresh, None, exp or expiry(access) or 0.0)


def file_logins(environ: Mapping[str, str] | None = None) -> list[FileLogin]:
    """Every readable login in both files; a malformed file is logged and skipped."""
    found: list[FileLogin] = []
    sources = ((read_codex, codex_auth_path(environ)), (read_opencode, opencode_auth_path(environ)))
    for reader, path in sources:
        try:
            login = reader(path)
        except AuthFileError as exc:
            log.warning("%s", exc)
            continue
        if login is not None:
            found.append(login)
    return found


def import_primary(
    store: AccountStore, clock: Clock, environ: Mapping[str, str] | None = None
) -> Account | None:
    """On first start (empty pool) import the user's own login as the primary, the newer of the two
    files when both hold one. Returns the account, or ``None`` when nothing was imported."""
    if store.accounts():
        return None
    usable = [login for login in file_logins(environ) if login.identity is not None]
    if not usable:
        note = keyring_note(environ)
        if note is not None:
            log.warning("%s", note)
        return None
    best = max(usable, key=lambda login: login.tokens.expires_at)
    assert best.identity is not None
    log.info("Imported the primary account from %s", best.path)
    return store.save_login(best.identity, best.tokens, best.email, best.plan, make_primary=True)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    try:
        write_atomic(path, json.dumps(data, indent=2) + "\n", mode=0o600, keep_mode=True)
    except OSError as exc:
        raise AuthFileError(f"Could not write {path}: {exc.strerror or exc}") from exc


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


class PrimarySync:
    """Two-way sync of the primary account's tokens with the user's auth files."""

    def __init__(self, store: AccountStore, clock: Clock, environ: Mapping[str, str] | None = None) -> None:
        self._store = store
        self._clock = clock
        self._environ = environ

    def adopt_newer(self, account: Account) -> Account:
        """Re-read both files; if one holds this identity with a newer token set than ours (another
        client refreshed it), store that set (compare-and-set) and return the updated account."""
        ours = account.tokens
        newer = [
            login
            for login in file_logins(self._environ)
            if login.identity == account.identity
            and login.tokens.refresh_token != ours.refresh_token
            and login.tokens.expires_at > ours.expires_at
        ]
        if not newer:
            return account
        best = max(newer, key=lambda login: login.tokens.expires_at)
        tokens = best.tokens if best.tokens.id_token else _with_id_token(best.tokens, ours.id_token)
        if self._store.update_tokens(account.id, tokens, expected_refresh_token=ours.refresh_token):
            log.info("Adopted newer tokens for %s from %s", account.name, best.path)
        return self._store.get(account.id) or account

    def write_back(self, account: Account) -> list[Path]:
        """Write this account's tokens into each file that holds its identity with an older token set.

        Returns the files written. Files holding another login, or a newer one, are left alone.
        """
        written: list[Path] = []
        tokens = account.tokens
        codex_path, opencode_path = codex_auth_path(self._environ), opencode_auth_path(self._environ)
        for reader, path, patch in (
            (read_codex, codex_path, self._patch_codex),
            (read_opencode, opencode_path, self._patch_opencode),
        ):
            login = reader(path)
            if login is None or login.identity != account.identity:
                continue
            if login.tokens.refresh_token == tokens.refresh_token and login.tokens.access_token == (
                tokens.access_token
            ):
                continue
            if login.tokens.expires_at > tokens.expires_at:
                continue  # the file is newer than us: adopt_newer will pick it up
            data = _load(path)
            assert data is not None
            _write_atomic(path, patch(data, account))
            written.append(path)
        return written

    def _patch_codex(self, data: dict[str, Any], account: Account) -> dict[str, Any]:
        tokens = dict(data["tokens"])
        tokens["access_token"] = account.tokens.access_token
        tokens["refresh_token"] = account.tokens.refresh_token
        if account.tokens.id_token:
            tokens["id_token"] = account.tokens.id_token
        tokens["account_id"] = account.identity.chatgpt_account_id
        return {**data, "tokens": tokens, "last_refresh": _rfc3339(self._clock())}

    def _patch_opencode(self, data: dict[str, Any], account: Account) -> dict[str, Any]:
        entry = dict(data["openai"])
        entry["access"] = account.tokens.access_token
        entry["refresh"] = account.tokens.refresh_token
        entry["expires"] = int(account.tokens.expires_at * 1000)
        entry["accountId"] = account.identity.chatgpt_account_id
        return {**data, "openai": entry}


def _with_id_token(tokens: TokenSet, id_token: str | None) -> TokenSet:
    return TokenSet(tokens.access_token, tokens.refresh_token, id_token, tokens.expires_at)
