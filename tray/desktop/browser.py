"""Opening a web page in the user's browser, for the browser sign-in.

:func:`system_opener` returns the opener a :class:`tray.login.LoginService` takes, or ``None`` where
no browser can be shown (a Linux session without a display). The opener never waits: the browser
is started on a thread of its own, because Python's :mod:`webbrowser` waits for some browsers to
exit (text browsers, and any command named in ``$BROWSER``), and the sign-in starts on the proxy's
event loop, which must never wait on another program.

``$BROWSER`` is honoured as :mod:`webbrowser` documents it (commands separated by ``os.pathsep``,
``%s`` replaced by the address, else the address added at the end); the environment is passed in,
so the tests name a recording command of their own. Without it, :func:`webbrowser.open` picks the
desktop's browser.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

Opener = Callable[[str], None]


def can_open(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a browser window can be shown: always on macOS and Windows, with a display on Linux."""
    env = os.environ if environ is None else environ
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def _commands(url: str, environ: Mapping[str, str]) -> list[list[str]]:
    found = []
    for entry in environ.get("BROWSER", "").split(os.pathsep):
        words = shlex.split(entry)
        if words:
            found.append([w.replace("%s", url) for w in words] if "%s" in entry else [*words, url])
    return found


def open_url(url: str, environ: Mapping[str, str] | None = None) -> bool:
    """Show ``url`` in a browser and wait for the command that does so; ``True`` when one took it.
    Call it off the event loop (the opener :func:`system_opener` gives does)."""
    env = dict(os.environ if environ is None else environ)
    commands = _commands(url, env)
    if not commands:
        return webbrowser.open(url)
    for command in commands:  # the user chose these: no other browser is tried
        try:
            done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, check=False)
        except OSError as exc:
            log.info("Could not run the browser %s: %s", command[0], exc)
            continue
        if done.returncode == 0:
            return True
    return False


def system_opener(environ: Mapping[str, str] | None = None) -> Opener | None:
    """An opener that shows the address in a browser without waiting for it, or ``None`` when no
    browser can be shown here (the sign-in page then offers the link to open or copy)."""
    if not can_open(environ):
        return None

    def opener(url: str) -> None:
        def run() -> None:
            try:
                if not open_url(url, environ):
                    log.info("No browser took the sign-in page; the window shows its link.")
            except Exception as exc:  # a broken browser setup must not end the sign-in
                log.info("Could not open a browser: %s", exc)

        threading.Thread(target=run, name="codex-pool-browser", daemon=True).start()

    return opener
