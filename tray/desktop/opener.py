"""Opening a file with the desktop's default application ("Open config file").

Linux and other freedesktop desktops run ``xdg-open``, macOS ``open``, Windows ``os.startfile``.
The opener is a child process: a daemon thread waits for it, so it never lingers as a zombie,
and when it says that nothing here opens such files (or there is no opener at all) the user is
told what to do instead: open the file in a text editor, at the path given. The caller learns of
a failure through ``on_failure`` (from that thread) or :class:`~tray.errors.PoolError` (at once).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tray.errors import PoolError

log = logging.getLogger(__name__)

def advice(path: Path) -> str:
    """What to do when no application opens the file."""
    return f"Open {path} in a text editor (it is plain TOML)."


def open_path(path: Path, on_failure: Callable[[str], None] | None = None,
              platform: str = sys.platform) -> None:
    """Open ``path`` with the default application; never waits for it. Raises
    :class:`~tray.errors.PoolError` when no opener exists; ``on_failure`` gets the message when
    the opener ends with an error (no application for the file type, for instance)."""
    if platform == "win32":
        try:
            os.startfile(path)  # type: ignore[attr-defined,unused-ignore]  # noqa: S606
        except OSError as exc:
            raise PoolError(f"Windows could not open {path.name} ({exc.strerror}). {advice(path)}") from exc
        return
    opener = "open" if platform == "darwin" else "xdg-open"
    found = shutil.which(opener)
    if found is None:
        raise PoolError(f"There is no '{opener}' here to open files with. {advice(path)}")
    try:
        child = subprocess.Popen([found, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise PoolError(f"'{opener}' could not be started ({exc.strerror}). {advice(path)}") from exc

    def reap() -> None:
        code = child.wait()  # some openers stay while the editor runs: reaped when they end
        if code != 0:
            # xdg-open: 3 = no application for the file type, 4 = the action failed
            message = f"Nothing here opens {path.suffix or 'such'} files ('{opener}' ended with {code}). " \
                      f"{advice(path)}"
            log.info("%s", message)
            if on_failure is not None:
                on_failure(message)

    threading.Thread(target=reap, name="opener", daemon=True).start()
