"""``codex-pool login [--device] [--primary]``: add an account (or sign an existing one in again).

The browser flow prints the sign-in URL (and opens the browser when there is a display) and waits
for the loopback callback on port 1455. ``--device`` prints the verification URL and the user code
and waits for approval, so it can be scripted: exit 0 printing the account, or 1 with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import httpx

from tray.auth import LoginService, OAuthClient
from tray.config import load_config
from tray.desktop import system_opener
from tray.models import Account
from tray.paths import resolve_paths
from tray.store import Store


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "login",
        help="add a ChatGPT account to the pool (browser sign-in, or --device for a code)",
        description="Sign a ChatGPT account in and add it to the pool; signing in a known account "
        "again updates it.",
    )
    parser.add_argument(
        "--device", action="store_true", help="sign in with a device code instead of a local browser"
    )
    parser.add_argument("--primary", action="store_true", help="make this account the primary")
    parser.add_argument(
        "--no-browser", action="store_true", help="only print the sign-in URL, do not open a browser"
    )
    parser.set_defaults(func=run)


def _say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths().ensure()
    loaded = load_config(paths.config_file)
    for problem in loaded.problems:
        print(f"codex-pool: config: {problem}", file=sys.stderr, flush=True)
    store = Store.open(paths.db_file, time.time)
    try:
        known = {account.id for account in store.accounts()}
        account = asyncio.run(_login(store, loaded.config.auth_url, args))
    finally:
        store.close()
    verb = "Signed in again:" if account.id in known else "Added"
    email = account.email if account.email != account.name else None
    details = ", ".join(part for part in (email, account.plan, account.role) if part)
    _say(f"{verb} {account.name} ({details}).")
    return 0


async def _login(store: Store, auth_url: str, args: argparse.Namespace) -> Account:
    opener = None if args.no_browser or args.device else system_opener()
    async with httpx.AsyncClient(trust_env=False) as http:
        service = LoginService(store, OAuthClient(http, auth_url, time.time), time.time, open_browser=opener)
        try:
            if args.device:
                ticket = await service.start_device(make_primary=args.primary)
                _say(f"Open {ticket.url} and enter this code: {ticket.user_code}")
                _say("Waiting for approval...")
            else:
                ticket = await service.start_browser(make_primary=args.primary)
                _say("Sign in with this link (it is opened in your browser when possible):")
                _say(ticket.url)
                _say("Waiting for the browser...")
            return await service.wait(ticket.id)
        finally:
            await service.close()
