"""Where codex-pool's log lines go: a rotating file in the user log folder (``Paths.log_file``, 0600
in a 0700 folder) and, for ``serve``, stderr too.

Every handler installed here masks anything that looks like a secret (bearer values, JWTs, our local
key and management token, ``access_token``/``refresh_token``/``id_token`` values, refresh tokens)
in the message, its arguments and any traceback. The code already never logs a secret; this is
defence in depth for the day a third-party message or an exception text carries one.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from io import TextIOWrapper
from logging.handlers import RotatingFileHandler
from pathlib import Path

from tray.paths import Paths

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_BYTES = 2_000_000  # per file; the current file plus BACKUPS rotated ones are kept
BACKUPS = 3
MASK = "[redacted]"

# (pattern, replacement); applied in order.
_SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer)(\s+)[^\s\"',;]+"), rf"\1\2{MASK}"),
    (re.compile(r"""(?i)\b((?:access|refresh|id)_token)(["']?\s*[:=]\s*["']?)[^\s"',;&}]+"""),
     rf"\1\2{MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){0,2}"), MASK),  # JWT (header is base64 "{")
    # the management token (old and new prefix), window codes and window sessions
    (re.compile(r"\b(cpui|cpmt|cpc|cps)-[A-Za-z0-9_-]{6,}"), rf"\1-{MASK}"),
    (re.compile(r"\bcp-[A-Za-z0-9_-]{6,}"), f"cp-{MASK}"),  # local client key
    (re.compile(r"\brt_[A-Za-z0-9._-]{8,}"), f"rt_{MASK}"),  # refresh tokens
    # a URL's user:password@ (a forward proxy's credentials)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]*:[^\s/@]*@"), rf"\1{MASK}@"),
)


def redact(text: str) -> str:
    """``text`` with every secret-looking part replaced by ``[redacted]``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments merged in) and traceback text, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A rotating log file that is created (and kept) 0600: log lines name accounts and hosts."""

    def _open(self) -> TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.baseFilename, 0o600)  # an older file keeps its mode otherwise
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


_installed: list[logging.Handler] = []


def _prepare(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    _installed.append(handler)
    return handler


def setup(
    paths: Paths,
    level: str = "info",
    *,
    stderr_level: int | None = None,
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
) -> Path | None:
    """Log codex-pool's lines at ``level`` (the config's ``log-level``) to ``paths.log_file`` and,
    when ``stderr_level`` is given, those at or above it to stderr; other libraries log warnings
    only. Replaces what an earlier call installed. Returns the log file, or ``None`` when it cannot
    be written (then one line on stderr says why and logging goes on without it)."""
    teardown()
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    log_file: Path | None = paths.log_file
    try:
        paths.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(paths.log_dir, 0o700)
        handlers.append(PrivateRotatingFileHandler(paths.log_file, maxBytes=max_bytes, backupCount=backups,
                                                   encoding="utf-8"))
    except OSError as exc:
        log_file = None
        print(f"codex-pool: cannot write the log file {paths.log_file}: {exc.strerror or exc}",
              file=sys.stderr, flush=True)
    if stderr_level is not None and sys.stderr is not None:  # None: a windowed program (pythonw)
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(stderr_level)
        handlers.append(console)
    for handler in handlers:
        root.addHandler(_prepare(handler))
    root.setLevel(logging.WARNING)
    logging.getLogger("tray").setLevel(level.upper())
    return log_file


def teardown() -> None:
    """Remove and close the handlers :func:`setup` installed."""
    root = logging.getLogger()
    while _installed:
        handler = _installed.pop()
        root.removeHandler(handler)
        handler.close()
