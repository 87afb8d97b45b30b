"""``codex-pool`` with no command: the tray app, or the headless proxy where there is no desktop.

One tray per pool: when another ``codex-pool`` of the same pool runs, ask it to show its window and
exit 0. Without a display or the GUI libraries, say so in one line and run exactly what ``serve``
runs, so the main command always does its job.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tray.desktop.instance import Instance, ask_running
from tray.errors import PoolError
from tray.paths import Paths, resolve_paths


def _log_to_file(paths: Paths) -> None:
    """The tray has no terminal to speak of: warnings go to stderr and, with info, to the log file."""
    from tray import logs
    from tray.config import load_config

    logs.setup(paths, load_config(paths.config_file).config.log_level, stderr_level=logging.WARNING)


def run_default(args: argparse.Namespace) -> int:
    paths = resolve_paths().ensure()
    instance = Instance(paths)
    if not instance.acquire():
        reply = ask_running(paths, "show")
        if reply == "ok":
            print("codex-pool is already running; its window is shown now.")
            return 0
        if reply == "headless":
            print("codex-pool is already running headless (no window to show).")
            return 0
        raise PoolError(
            f"Another codex-pool holds {paths.data_dir / 'tray.lock'} but does not answer; "
            "stop it or wait for it to finish starting."
        )
    try:
        from tray.desktop.tray import gui_problem

        problem = gui_problem()
        if problem is None:
            from tray.desktop.app import TrayApp

            _log_to_file(paths)
            return TrayApp(paths, instance).run()
        print(f"codex-pool: no tray ({problem}); running the proxy headless, as 'codex-pool serve' does.",
              file=sys.stderr, flush=True)
        instance.serve(lambda command: "headless")
        from tray.commands import serve

        return serve.run(argparse.Namespace(host=None, port=None))
    finally:
        instance.close()
