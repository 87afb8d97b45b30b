"""Which program listens on a TCP port of this machine, where the platform can tell; how codex-pool
binds its own ports the same way on every OS; and whether a process is still alive.

Who holds a port is used only to word messages ("port 4455 is held by another program (pid 812:
nc)"), never to decide anything.

* Linux: the listening socket's inode and owner from ``/proc/net/tcp`` and ``tcp6``, then the
  process whose ``/proc/<pid>/fd`` links to that inode. Another user's descriptors are unreadable
  unless we are root, so for their programs the owner's user name is what we can say.
* macOS: ``lsof`` (part of the base system).
* Windows: ``netstat -ano`` for the process id, ``tasklist`` for its name.

Anything that fails (no permission, a missing tool, an unknown format) just means "not known". The
parsers are pure functions over the tools' text, so they are tested on every OS.

Binding (:func:`prepare_listener`, :func:`bind_refusal`): on POSIX a listening socket sets
``SO_REUSEADDR``, which lets it bind over the ``TIME_WAIT`` connections a previous instance left
(quit and start again within a minute) but never next to a live listener (that would take
``SO_REUSEPORT``). On Windows a plain bind already passes ``TIME_WAIT``, and ``SO_REUSEADDR`` would
let another program bind the same port on top of ours, so ``SO_EXCLUSIVEADDRUSE`` is set instead.
Windows says "reserved" with WSAEACCES (10013, not ``errno.EACCES``) for ports that Hyper-V, WSL2 or
Docker exclude.

Liveness (:func:`process_alive`): ``os.kill(pid, 0)`` on POSIX; on Windows that call *sends*
CTRL_C_EVENT, so the process is opened and its exit code asked instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class Holder:
    pid: int | None = None
    program: str | None = None
    user: str | None = None

    def describe(self) -> str:
        """``pid 812: nc``, ``pid 812``, ``a program of user bob`` or ``""``."""
        if self.pid is not None:
            return f"pid {self.pid}: {self.program}" if self.program else f"pid {self.pid}"
        return f"a program of user {self.user}" if self.user else ""


def held_message(port: int, holder: Holder | None) -> str:
    """``port 4455 is held by another program (pid 812: nc)``; the part in brackets when known."""
    said = holder.describe() if holder is not None else ""
    return f"port {port} is held by another program" + (f" ({said})" if said else "")


def parse_proc_net_tcp(text: str, port: int) -> list[tuple[int, int]]:
    """``(inode, uid)`` of each socket listening on ``port`` in a ``/proc/net/tcp{,6}`` table."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        with contextlib.suppress(ValueError):
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.append((int(fields[9]), int(fields[7])))
    return found


def parse_lsof(text: str) -> Holder | None:
    """The first process in ``lsof -F pcL`` output (lines ``p<pid>``, ``c<command>``, ``L<login>``)."""
    pid: int | None = None
    program = user = None
    for line in text.splitlines():
        tag, value = line[:1], line[1:].strip()
        if tag == "p":
            if pid is not None:
                break
            with contextlib.suppress(ValueError):
                pid = int(value)
        elif tag == "c":
            program = value
        elif tag == "L":
            user = value
    return Holder(pid, program, user) if pid is not None else None


def parse_netstat(text: str, port: int) -> int | None:
    """The process id listening on ``port`` in Windows ``netstat -ano -p TCP`` output."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[0] == "TCP" and fields[3] == "LISTENING":
            with contextlib.suppress(ValueError):
                if int(fields[1].rsplit(":", 1)[1]) == port:
                    return int(fields[4])
    return None


def _linux(port: int, proc: Path) -> Holder | None:
    sockets: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            sockets.update(parse_proc_net_tcp((proc / "net" / table).read_text(), port))
    if not sockets:
        return None
    links = {f"socket:[{inode}]" for inode in sockets}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in links:
                        program = (entry / "comm").read_text().strip() or None
                        return Holder(int(entry.name), program, _user(entry.stat().st_uid))
    return Holder(user=_user(next(iter(sockets.values()))))


def _user(uid: int) -> str:
    if sys.platform == "win32":  # /proc is Linux's; Windows has no uids (and no pwd module)
        return str(uid)
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _run(args: list[str]) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=5, check=False).stdout


def holder(port: int) -> Holder | None:
    """Who listens on ``port`` (any local address), or None when nobody or it cannot be told."""
    try:
        if sys.platform.startswith("linux"):
            return _linux(port, Path("/proc"))
        if sys.platform == "darwin":
            return parse_lsof(_run(["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-FpcL"]))
        if sys.platform == "win32":
            pid = parse_netstat(_run(["netstat", "-ano", "-p", "TCP"]), port)
            if pid is None:
                return None
            row = _run(["tasklist", "/FI", f"PID eq {pid}", "/FO", "CSV", "/NH"]).split('","')
            return Holder(pid, row[0].strip('"') if len(row) > 1 else None)
    except (OSError, subprocess.SubprocessError):
        return None
    return None


# --- binding our own ports ------------------------------------------------------------------------

WSAEACCES = 10013  # Windows: an excluded port range, or another program's exclusive bind
WSAEADDRINUSE = 10048
Refusal = Literal["in use", "reserved", "forbidden"]


def listen_option(platform: str = sys.platform) -> str:
    """The name of the socket option a listening socket sets before ``bind`` on ``platform``."""
    return "SO_EXCLUSIVEADDRUSE" if platform == "win32" else "SO_REUSEADDR"


def prepare_listener(sock: socket.socket, platform: str = sys.platform) -> None:
    """Set :func:`listen_option` on ``sock`` (before ``bind``)."""
    option = getattr(socket, listen_option(platform), None)
    if option is not None:
        sock.setsockopt(socket.SOL_SOCKET, option, 1)


def bind_refusal(exc: OSError) -> Refusal | None:
    """Why ``bind`` refused: ``in use`` (a live listener), ``reserved`` (Windows WSAEACCES: an
    excluded range or an exclusive bind), ``forbidden`` (POSIX EACCES: a privileged port), or
    ``None`` for any other error. Windows reports socket errors in ``winerror``/``errno`` as WSA codes."""
    codes = {exc.errno, getattr(exc, "winerror", None)}
    if codes & {errno.EADDRINUSE, WSAEADDRINUSE}:
        return "in use"
    if WSAEACCES in codes:
        return "reserved"
    if errno.EACCES in codes:
        return "forbidden"
    return None


RESERVED_HINT = ("Windows keeps it for itself (Hyper-V, WSL2 and Docker reserve port ranges; "
                 "'netsh interface ipv4 show excludedportrange protocol=tcp' lists them)")


# --- is a process alive ---------------------------------------------------------------------------

PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259
ERROR_ACCESS_DENIED = 5


class ProcessApi(Protocol):
    """The three Windows calls a liveness check needs (kernel32, through ctypes)."""

    def open(self, pid: int) -> tuple[int | None, int]:
        """A query handle for ``pid`` (or None) and the last error code."""
        ...

    def exit_code(self, handle: int) -> int | None: ...

    def close(self, handle: int) -> None: ...


class Kernel32:
    """:class:`ProcessApi` on the real kernel32 (Windows only; loaded when first used)."""

    def __init__(self) -> None:
        import ctypes

        self._ctypes = ctypes
        self._dll: Any = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
        self._dll.OpenProcess.restype = ctypes.c_void_p

    def open(self, pid: int) -> tuple[int | None, int]:
        handle = self._dll.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        error: int = self._ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]
        return (int(handle) if handle else None), error

    def exit_code(self, handle: int) -> int | None:
        code = self._ctypes.c_ulong()
        ok = self._dll.GetExitCodeProcess(self._ctypes.c_void_p(handle), self._ctypes.byref(code))
        return int(code.value) if ok else None

    def close(self, handle: int) -> None:
        self._dll.CloseHandle(self._ctypes.c_void_p(handle))


def process_alive(pid: object, platform: str = sys.platform, *, api: ProcessApi | None = None) -> bool:
    """Whether process ``pid`` runs (a pid that is not a positive int is not alive). Never signals
    anything: on Windows ``os.kill(pid, 0)`` would send CTRL_C_EVENT to the console group."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if platform == "win32":
        return windows_alive(pid, api or Kernel32())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return False
    return True


def windows_alive(pid: int, api: ProcessApi) -> bool:
    """Windows: open the process for a query and ask for its exit code (STILL_ACTIVE while it runs).
    Access denied means it exists (another user's, or elevated); any other failure, that it does not."""
    handle, error = api.open(pid)
    if handle is None:
        return error == ERROR_ACCESS_DENIED
    try:
        code = api.exit_code(handle)
        return code is None or code == STILL_ACTIVE
    finally:
        api.close(handle)
