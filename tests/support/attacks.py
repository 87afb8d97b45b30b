"""Tools for the security tests that attack codex-pool the way a hostile neighbour would (tests only).

* :func:`raw_http` sends bytes exactly as given (duplicate headers, huge heads, half a request) and
  reads the answer, because httpx refuses to send most of these.
* :func:`second_user` creates a throwaway local account (the tests run as root) and
  :func:`run_as` starts a stdlib-only Python attacker as that user, the way another person on a
  shared machine would run it: no access to the pool's files, same loopback.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def read_answer(sock: socket.socket, deadline: float) -> Answer | None:
    """Read one HTTP answer (up to end of head plus Content-Length, or until close), or None when
    the connection closed without one or the deadline passed."""
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            return None
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        body += chunk
    return Answer(int(lines[0].split()[1]), headers, body)


def raw_http(port: int, request: bytes, timeout: float = 15.0) -> Answer | None:
    """Send ``request`` as is to ``127.0.0.1:port`` and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_answer(sock, time.monotonic() + timeout)


def request(method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def closed_by_peer(sock: socket.socket, deadline: float) -> bool:
    """Whether the other end closes ``sock`` (answer bytes are read and dropped) before ``deadline``."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False


@contextlib.contextmanager
def second_user() -> Iterator[pwd.struct_passwd]:
    """A local account that is not the pool's owner, removed afterwards."""
    name = f"cpx{secrets.token_hex(4)}"
    subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                    "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def run_as(user: pwd.struct_passwd, code: str, *args: str) -> subprocess.Popen[str]:
    """Run the stdlib-only Python ``code`` as ``user`` (isolated mode: no PYTHONPATH, no user site)."""
    python = os.path.realpath(sys.executable)
    return subprocess.Popen(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
         python, "-I", "-c", code, *args],
        cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """End an attacker started by :func:`run_as` and return what it printed."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=10)
