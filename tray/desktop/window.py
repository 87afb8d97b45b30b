"""The pool window: a pywebview window on the engine's ``/ui/`` page, in a process of its own.

pywebview wants to own the main thread's GUI loop, and so does the tray icon, so the window runs in
a child process: ``python -m tray.desktop.window``, or in a PyInstaller bundle (where
``sys.executable`` is codex-pool itself) ``codex-pool --pool-window``, which the bundle's launcher
dispatches before the command line is parsed (:func:`window_command`). The parent talks to it over
the child's stdin, one word per line:

* first line: the UI address. It carries a one-time code, so it never goes on the command line
  (other users can read a process's arguments);
* ``show [address]``: bring the window to the front (a second "Open pool window" or a second
  start) and move the page to ``address``: the UI's address with a fresh one-time code and, when
  given, the UI page (``...#code=...&page=add/relogin=3``); the fresh code replaces a session that
  has ended. On the same address only the fragment changes; after the proxy restarted on a new
  port the window goes there (a bare ``#fragment`` is still understood);
* ``close``: close the window and exit.

When the parent dies, stdin reaches end-of-file and the window closes with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

# Windows: a child started from the windowed tray must not open a console window of its own.
NO_CONSOLE = getattr(subprocess, "CREATE_NO_WINDOW", 0)

TITLE = "codex-pool"
SIZE = (960, 640)
MIN_SIZE = (640, 420)
WINDOW_FLAG = "--pool-window"  # packaging/launcher.py: run the window, not the command line


def window_command(executable: str | None = None, *, frozen: bool | None = None) -> list[str]:
    """The argv that starts the window process. From source or a pip install the interpreter runs
    this module; in a frozen bundle ``executable`` is codex-pool itself, whose argparse would refuse
    ``-m``, so it gets :data:`WINDOW_FLAG` instead."""
    exe = sys.executable if executable is None else executable
    if frozen is None:
        frozen = bool(getattr(sys, "frozen", False))
    return [exe, WINDOW_FLAG] if frozen else [exe, "-m", "tray.desktop.window"]


class WindowProcess:
    """The parent's handle on the window process: at most one window per tray."""

    def __init__(self, command: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                 log: Path | None = None) -> None:
        self._command = list(command) if command is not None else window_command()
        self._env = dict(env) if env is not None else None
        self._log = log  # the child's stderr goes here (WebKit is chatty; a pipe could fill up)
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_open and self._proc is not None else None

    def open(self, url: str, page: str | None = None) -> bool:
        """Show the window on ``url`` (a fresh window address) and ``page``: start it, or raise the
        one already open. Returns whether a new window process was started."""
        if page:
            url = f"{url}&page={page}" if "#" in url else f"{url}#page={page}"
        show = f"show {url}"
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and self._send(show):
                return False
            if self._proc is not None and self._proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                    self._proc.stdin.close()
            stderr = open(self._log, "a", encoding="utf-8") if self._log else None  # noqa: SIM115
            try:
                self._proc = subprocess.Popen(
                    self._command, stdin=subprocess.PIPE, stderr=stderr, text=True, env=self._env,
                    creationflags=NO_CONSOLE,
                )
            finally:
                if stderr is not None:
                    stderr.close()  # the child has its own copy
            self._send(url)
            return True

    def failed(self, within: float) -> str | None:
        """Wait up to ``within`` seconds: when the window process died with an error in that time,
        the reason (the last line it logged); ``None`` while it runs or after a clean exit."""
        proc = self._proc
        if proc is None:
            return None
        try:
            code = proc.wait(within) if within > 0 else proc.poll()
        except subprocess.TimeoutExpired:
            return None
        if code is None:
            return None
        if code == 0:
            return None
        last = ""
        if self._log is not None:
            try:
                text = self._log.read_text(encoding="utf-8", errors="replace")
                lines = [ln for ln in text.splitlines() if ln]
                last = lines[-1] if lines else ""
            except OSError:
                pass
        return last or f"exit status {code}"

    def _send(self, line: str) -> bool:
        stdin: IO[str] | None = self._proc.stdin if self._proc is not None else None
        if stdin is None:
            return False
        try:
            stdin.write(line + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            if proc.poll() is None:
                try:
                    if proc.stdin is not None:
                        proc.stdin.write("close\n")
                        proc.stdin.close()
                except (BrokenPipeError, OSError, ValueError):
                    pass
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            elif proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                    proc.stdin.close()  # may still hold the line the dead child never read


def _icon_path() -> str | None:
    path = resources.files("tray") / "assets" / "codex-pool.png"
    return str(path) if path.is_file() else None


def _listen(window: Any, stdin: IO[str], url: str) -> None:
    """Runs on pywebview's worker thread: obey the parent's commands until close or end-of-file."""
    window.events.loaded.wait(30)  # the page must have taken its code before we change pages
    base = url.split("#", 1)[0]
    for line in stdin:
        command, _, target = line.strip().partition(" ")
        if command == "show":
            window.show()
            window.restore()  # GTK: deiconify + present, i.e. raise and focus
            if target.startswith(("http://127.0.0.1:", "http://[::1]:", "http://localhost:")):
                # The proxy restarted on another port: the page follows it there.
                base, _, fragment = target.partition("#")
            else:
                fragment = target.lstrip("#")
            if fragment:
                # On the same address a fragment-only navigation: the page stays (with its session
                # in memory), takes the new code and switches pages. (The UI's Content-Security-
                # Policy refuses evaluate_js, which pywebview runs through eval.)
                window.load_url(f"{base}#{fragment}")
        elif command == "close":
            break
    window.destroy()


def main(stdin: IO[str] | None = None) -> int:
    """``python -m tray.desktop.window``: read the UI address from stdin and show the window."""
    logging.basicConfig(level=os.environ.get("CODEX_POOL_LOG_LEVEL", "WARNING"))
    source = stdin or sys.stdin
    url = source.readline().strip()
    if not url.startswith(("http://127.0.0.1:", "http://[::1]:", "http://localhost:")):
        print("codex-pool window: expected the pool's local UI address on stdin", file=sys.stderr)
        return 2
    import webview

    webview.start(_listen, (create(url), source, url), icon=_icon_path())
    return 0


def create(url: str) -> Any:
    """The pool window on ``url`` (a pywebview window; ``webview.start`` shows it)."""
    import webview

    return webview.create_window(
        TITLE, url, width=SIZE[0], height=SIZE[1], min_size=MIN_SIZE, background_color="#f6f7f9",
    )


if __name__ == "__main__":
    raise SystemExit(main())
