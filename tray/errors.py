"""The one error tree of codex-pool.

Every error the project raises derives from :class:`PoolError`. Third-party exceptions
(sqlite3, httpx, OSError, tomllib...) are converted where they enter, with ``raise ... from exc``.
Messages are written for the user: one clear sentence, never a secret.

::

    PoolError
    ├── ConfigError                 config file unreadable/unwritable (bad values are *problems*, not errors)
    │   └── SettingsRejected        a save refused because a value does not fit (nothing written)
    ├── StoreError                  the SQLite pool file
    │   ├── StoreLockedError        another process holds the write lock past the busy timeout
    │   └── StoreCorruptError       the file is not a database / fails integrity checks
    ├── AccountError                an account selector or pool edit that cannot be done
    │   └── AccountNotFoundError
    ├── AuthError                   OAuth and tokens
    │   ├── LoginError              browser/device login failed, timed out or was cancelled
    │   ├── RefreshError            token refresh failed
    │   │   ├── TransientRefreshError   network, timeout, 5xx: try again later, never disables
    │   │   └── PermanentRefreshError   invalid_grant, refresh_token_reused...: account needs login
    │   └── AuthFileError           Codex/opencode auth.json unreadable or malformed
    ├── UpstreamError               the ChatGPT backend could not be reached or answered nonsense
    ├── ServerError                 the local proxy could not start (port in use, non-loopback bind)
    │   └── HttpLibraryError        the installed httpx/httpcore lacks what the upstream transport uses
    ├── ClientSetupError            Codex CLI / opencode config could not be edited or restored
    └── AutostartError              the start-at-login entry could not be written or removed
"""

from __future__ import annotations


class PoolError(Exception):
    """Root of every error codex-pool raises; ``str(err)`` is a user-facing sentence."""


class ConfigError(PoolError):
    pass


class SettingsRejected(ConfigError):
    """A save of settings refused; ``problems`` maps each refused key (as in the file) to a sentence
    saying what is wrong with it, for the field it belongs to."""

    def __init__(self, message: str, problems: dict[str, str]) -> None:
        super().__init__(message)
        self.problems = problems


class StoreError(PoolError):
    pass


class StoreLockedError(StoreError):
    pass


class StoreCorruptError(StoreError):
    pass


class AccountError(PoolError):
    pass


class AccountNotFoundError(AccountError):
    pass


class AuthError(PoolError):
    pass


class LoginError(AuthError):
    pass


class RefreshError(AuthError):
    pass


class TransientRefreshError(RefreshError):
    pass


class PermanentRefreshError(RefreshError):
    """The refresh token is dead; ``code`` is the upstream error code (e.g. ``refresh_token_reused``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class AuthFileError(AuthError):
    pass


class UpstreamError(PoolError):
    pass


class ServerError(PoolError):
    """``brief``: the reason in a few words, for a menu line (``port 4466 is in use``)."""

    def __init__(self, message: str, *, brief: str | None = None) -> None:
        super().__init__(message)
        self.brief = brief


class HttpLibraryError(ServerError):
    pass


class ClientSetupError(PoolError):
    pass


class AutostartError(PoolError):
    pass
