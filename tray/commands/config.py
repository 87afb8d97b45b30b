"""``codex-pool config path|check``: where the settings file is, and whether it is valid."""

from __future__ import annotations

import argparse
from typing import Any

from tray.config import load_config
from tray.paths import resolve_paths


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "config",
        help="show the config file's path or check it",
        description="'path' prints where config.toml is; 'check' lists every problem in it (exit 1 if any).",
    )
    parser.add_argument("action", choices=("path", "check"), help="path or check")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = resolve_paths().config_file
    if args.action == "path":
        print(path)
        return 0
    loaded = load_config(path)  # a missing file is created with the defaults
    if loaded.problems:
        for problem in loaded.problems:
            print(f"{path}: {problem}")
        return 1
    print(f"config OK: {path}")
    return 0
