"""``codex-pool`` command line: a thin dispatcher over the modules in :mod:`tray.commands`.

Each command module exposes ``register(subparsers)`` which adds its parser(s) and sets
``func`` to a ``(args) -> int`` handler. User mistakes raise :class:`tray.errors.PoolError`;
this module prints its message on one line and exits non-zero, never a traceback.
With no command, the tray app starts (or the headless proxy where there is no display).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tray import __version__
from tray.errors import PoolError

# Order = order in --help. Each is tray.commands.<name> with a register(subparsers) function.
COMMAND_MODULES: tuple[str, ...] = (
    "serve",
    "login",
    "accounts",
    "status",
    "usage",
    "setup",
    "autostart",
    "config",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codex-pool",
        description="Use several ChatGPT (Codex) accounts as one. With no command, starts the tray app.",
    )
    parser.add_argument("--version", action="version", version=f"codex-pool {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tray.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tray.commands.{name}":
                raise
            continue  # command not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            from tray.commands.app import run_default

            return run_default(args)
        code: int = args.func(args)
        return code
    except PoolError as exc:
        print(f"codex-pool: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
