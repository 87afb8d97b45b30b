"""One tray per pool: a lock file decides who runs, a loopback socket lets a second start talk to it.

The first ``codex-pool`` takes an exclusive OS lock on ``tray.lock`` in the pool's data folder (held
until the process ends, so a crash never leaves a stale lock) and listens on ``127.0.0.1:<random>``.
It writes the port and a random token to ``tray-instance.json`` (0600). A second start finds the
lock taken, reads that file and sends ``<token> show``; the first opens (or raises) its window and
answers ``ok``. The token keeps other local users' processes from poking the tray.

Any local user can connect to that port, so connections are served side by side (one thread, a
selector), each must send its line within :data:`LINE_TIMEOUT`, and past :data:`MAX_PENDING` open
ones the oldest is dropped: connections that never speak cannot delay a second start's "show".
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from tray.paths import Paths, write_secret

log = logging.getLogger(__name__)

LOCK_NAME = "tray.lock"
INFO_NAME = "tray-instance.json"
LINE_TIMEOUT = 1.0  # seconds a connection has to send its command line
MAX_PENDING = 32  # connections waiting for their line; the oldest goes first
MAX_LINE = 4096


def _lock(fh: IO[Any]) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class Instance:
    """This process's claim to be the pool's tray. ``acquire()`` first; ``serve()`` once ready."""

    def __init__(self, paths: Paths) -> None:
        self._paths = paths
        self._fh: IO[Any] | None = None
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._token = secrets.token_urlsafe(24)
        self._closing = False

    @property
    def info_file(self) -> Path:
        return self._paths.data_dir / INFO_NAME

    def acquire(self) -> bool:
        """Take the lock; ``False`` when another process of this pool holds it."""
        self._paths.ensure()
        fh = open(self._paths.data_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the process's life
        if not _lock(fh):
            fh.close()
            return False
        self._fh = fh
        return True

    def serve(self, handle: Callable[[str], str]) -> None:
        """Answer commands from later starts on a daemon thread; ``handle(command) -> reply``."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        self._server = server
        info = {"pid": os.getpid(), "port": server.getsockname()[1], "token": self._token}
        write_secret(self.info_file, json.dumps(info) + "\n")
        self._thread = threading.Thread(target=self._accept, args=(server, handle), name="instance",
                                        daemon=True)
        self._thread.start()

    def _accept(self, server: socket.socket, handle: Callable[[str], str]) -> None:
        server.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(server, selectors.EVENT_READ)
        pending: dict[socket.socket, tuple[float, bytes]] = {}  # connection -> (deadline, read so far)
        try:
            while not self._closing:
                now = time.monotonic()
                wait = min((d for d, _ in pending.values()), default=now + 1.0) - now
                for key, _ in selector.select(max(0.0, min(wait, 1.0))):
                    if key.fileobj is server:
                        self._take(server, selector, pending)
                    else:
                        self._read(cast(socket.socket, key.fileobj), selector, pending, handle)
                now = time.monotonic()
                for conn in [c for c, (deadline, _) in pending.items() if deadline <= now]:
                    _drop(conn, selector, pending)
        except OSError:
            return  # the listening socket was closed
        finally:
            for conn in list(pending):
                _drop(conn, selector, pending)
            selector.close()

    def _take(self, server: socket.socket, selector: selectors.BaseSelector,
              pending: dict[socket.socket, tuple[float, bytes]]) -> None:
        conn, _ = server.accept()
        conn.setblocking(False)
        if len(pending) >= MAX_PENDING:
            _drop(next(iter(pending)), selector, pending)
        pending[conn] = (time.monotonic() + LINE_TIMEOUT, b"")
        selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket, selector: selectors.BaseSelector,
              pending: dict[socket.socket, tuple[float, bytes]], handle: Callable[[str], str]) -> None:
        deadline, got = pending[conn]
        try:
            data = conn.recv(MAX_LINE)
        except OSError:
            data = b""
        got += data
        if data and b"\n" not in got and len(got) < MAX_LINE:
            pending[conn] = (deadline, got)
            return
        _drop(conn, selector, pending, keep_open=True)
        with conn:
            if not data and b"\n" not in got:
                return
            token, _, command = got.split(b"\n", 1)[0].decode("utf-8", "replace").strip().partition(" ")
            try:
                if not hmac.compare_digest(token.encode(), self._token.encode()):
                    reply = "denied"
                else:
                    reply = handle(command)
                conn.settimeout(LINE_TIMEOUT)
                conn.sendall((reply + "\n").encode())
            except Exception as exc:
                log.warning("instance request failed: %s", exc)

    def close(self) -> None:
        self._closing = True
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()
            with contextlib.suppress(OSError):
                self.info_file.unlink()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _drop(conn: socket.socket, selector: selectors.BaseSelector,
          pending: dict[socket.socket, tuple[float, bytes]], keep_open: bool = False) -> None:
    pending.pop(conn, None)
    with contextlib.suppress(KeyError, ValueError, OSError):
        selector.unregister(conn)
    if not keep_open:
        with contextlib.suppress(OSError):
            conn.close()


def ask_running(paths: Paths, command: str = "show", wait: float = 10.0) -> str | None:
    """Send ``command`` to the pool's running tray and return its reply, or ``None`` when none
    answers within ``wait`` seconds (it may still be starting, so this retries)."""
    deadline = time.monotonic() + wait
    info_file = paths.data_dir / INFO_NAME
    while True:
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
            with socket.create_connection(("127.0.0.1", int(info["port"])), timeout=3) as conn:
                conn.sendall(f"{info['token']} {command}\n".encode())
                reply = conn.makefile("r", encoding="utf-8").readline().strip()
                if reply:
                    return reply
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
