"""``codex-pool setup codex|opencode [--undo] [--print]``: point a client at the proxy, or back."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

from tray.clients import KINDS, Kind, apply, config_path, snippets, undo
from tray.commands.status import check_listener
from tray.errors import ClientSetupError
from tray.paths import Paths, api_key, resolve_paths


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "setup",
        help="point Codex CLI or opencode at the proxy (--undo puts the file back)",
        description=(
            "Edit the client's config file so it sends its requests through codex-pool, after saving a "
            "copy of the file. --undo restores that copy exactly."
        ),
    )
    parser.add_argument("client", choices=KINDS, help="which client to set up")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--undo", action="store_true", help="take codex-pool out of the client's config")
    what.add_argument(
        "--print", dest="show", action="store_true", help="only print the settings; change nothing"
    )
    parser.set_defaults(func=run)


def proxy_url(paths: Paths) -> str:
    """The address clients should use: the running proxy's port, else the configured one.

    Always ``127.0.0.1`` (never ``localhost``: some clients try IPv6 first), whatever ``host`` the
    proxy binds, since the client runs on this machine. Refused when another program holds that
    port: a client pointed there would send it the key and every prompt.
    """
    url, listener = check_listener(paths)
    if listener.state == "other":
        raise ClientSetupError(f"{listener.refusal}, not codex-pool; nothing was changed. Stop that "
                               "program or choose another port ('port = <n>' in config.toml) first")
    port = urlsplit(url).port
    if port is None or port == 0:
        raise ClientSetupError(
            "The proxy port is 0 (a new free port at each start), so clients cannot be pointed at it: "
            "start codex-pool first, or set 'port' in config.toml"
        )
    return f"http://127.0.0.1:{port}"


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths().ensure()
    kind: Kind = args.client
    if args.show:
        print(snippets(proxy_url(paths), api_key(paths))[kind], end="")
        print(f"# in {config_path(kind)}")
        return 0
    result = undo(kind, paths) if args.undo else apply(kind, proxy_url(paths), api_key(paths), paths)
    print(result.message)
    if result.backup is not None and not args.undo:
        print(f"The file as it was before is saved at {result.backup}.")
    for note in result.notes:
        print(note)
    return 0
