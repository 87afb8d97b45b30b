"""``codex-pool serve [--host H] [--port N]``: run the proxy headless in the foreground.

Logs go to stderr and to the log file (:mod:`tray.logs`; never a secret); the proxy URL is printed
on stdout; SIGINT/SIGTERM stop it cleanly. Config problems are printed as one warning listing each.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from tray import logs
from tray.desktop import system_opener
from tray.engine import Engine
from tray.models import Config, ConfigInvalid, Event
from tray.notices import KINDS, Alerts
from tray.paths import Paths, resolve_paths


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the proxy headless in the foreground",
        description="Run the codex-pool proxy without the tray; stop it with Ctrl+C.",
    )
    parser.add_argument("--host", help="address to listen on (default: 'host' in config.toml)")
    parser.add_argument("--port", type=int, help="port (default: 'port' in config.toml; 0 = any free port)")
    parser.set_defaults(func=run)


class StderrNotices:
    """Headless notifications: config problems as one warning listing each; the other kinds once
    per episode (as the tray would notify), honouring the ``notifications`` switches."""

    def __init__(self) -> None:
        self.alerts = Alerts()
        self._lock = threading.Lock()

    def configure(self, config: Config) -> None:
        with self._lock:
            self.alerts.set_switches({kind: config.notifications.enabled(kind) for kind in KINDS})
            self.alerts.low_percent = config.quota_low_percent

    def __call__(self, event: Event) -> None:
        if isinstance(event, ConfigInvalid):
            lines = "\n".join(f"  - {p}" for p in event.problems)
            print(f"codex-pool: warning: problems in {event.path}:\n{lines}", file=sys.stderr, flush=True)
            return
        with self._lock:
            notices = self.alerts.on_event(event, time.time())
        for notice in notices:
            body = " ".join(notice.body.split())
            title = notice.title if notice.title.startswith("codex-pool") else f"codex-pool: {notice.title}"
            print(f"{title}: {body}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths().ensure()
    logs.setup(paths, "info", stderr_level=logging.NOTSET)  # the level follows the config below
    try:
        return _serve(args, paths)
    finally:
        logs.teardown()


def _serve(args: argparse.Namespace, paths: Paths) -> int:
    notices = StderrNotices()
    engine = Engine(paths, events=notices, host=args.host, port=args.port,
                    open_browser=system_opener())  # the window's browser sign-in
    engine.attach(notices)  # the notification switches follow config edits
    logging.getLogger("tray").setLevel(engine.config.log_level.upper())
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Windows: Ctrl+Break (SIGBREAK) stops it too, as Ctrl+C does.
    stops = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGBREAK", None)) if s is not None]
    previous = {s: signal.signal(s, on_signal) for s in stops}
    try:
        try:
            url = engine.start()
        except BaseException:
            engine.stop()
            raise
        print(f"codex-pool proxy listening on {url}", flush=True)
        print(f"  Codex CLI base_url: {url}/backend-api/codex   OpenAI clients: {url}/v1", flush=True)
        while not stop.wait(0.5):
            if engine.server is None or not engine.server.thread.is_alive():
                print("codex-pool: the proxy stopped unexpectedly", file=sys.stderr)
                return 1
        print("codex-pool: stopping", file=sys.stderr, flush=True)
        return 0
    finally:
        engine.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
