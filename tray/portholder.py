"""Which program listens on a TCP port of this machine, where the platform can tell. Used only to
word messages ("port 4455 is held by another program (pid 812: nc)"), never to decide anything.

* Linux: the listening socket's inode and owner from ``/proc/net/tcp`` and ``tcp6``, then the
  process whose ``/proc/<pid>/fd`` links to that inode. Another user's descriptors are unreadable
  unless we are root, so for their programs the owner's user name is what we can say.
* macOS: ``lsof`` (part of the base system).
* Windows: ``netstat -ano`` for the process id, ``tasklist`` for its name.

Anything that fails (no permission, a missing tool, an unknown format) just means "not known". The
parsers are pure functions over the tools' text, so they are tested on every OS.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
