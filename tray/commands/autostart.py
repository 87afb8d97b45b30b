"""``codex-pool autostart on|off|status``: start the tray app at login, or not."""

from __future__ import annotations

import argparse
from typing import Any

from tray import autostart


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "autostart",
        help="start codex-pool at login: on, off, or show the status",
        description="Turn starting codex-pool at login on or off; 'status' prints on or off.",
    )
    parser.add_argument("action", choices=("on", "off", "status"), help="on, off or status")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="with status: also say where the entry is"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    entry = autostart.backend()
    if args.action == "on":
        entry.enable()
        print(f"Start at login is on ({entry.location}).")
        for note in autostart.notes():
            print(note)
    elif args.action == "off":
        entry.disable()
        print("Start at login is off.")
    else:
        print("on" if entry.enabled() else "off")
        if args.verbose:
            print(f"entry: {entry.location}")
            print(f"command: {' '.join(entry.command)}")
    return 0
