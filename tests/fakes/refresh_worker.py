"""A separate OS process that refreshes one account through :class:`tray.auth.refresh.Refresher`
(tests only): ``python -m tests.fakes.refresh_worker DB AUTH_URL ACCOUNT_ID CALLERS [GO_FILE]``.

It starts ``CALLERS`` concurrent ``ensure_fresh`` calls (after ``GO_FILE`` appears, so two workers
start together) and prints one JSON line: the access tokens' fingerprints, or the error per caller.
Its callers wait for the refresh as long as it takes (they stand for one process's many users of
one account, not for requests that could fail over). Environment: ``WORKER_TOKEN_TIMEOUT`` (the
token call's bound, s), ``WORKER_LEASE_TTL`` (s).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import httpx

from tray.auth.oauth import OAuthClient
from tray.auth.refresh import LEASE_TTL, Refresher
from tray.errors import PoolError
from tray.store.accounts import Store


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


async def main(db: str, auth_url: str, account_id: int, callers: int, go: str | None) -> None:
    store = Store.open(db, time.time)
    timeout = float(os.environ.get("WORKER_TOKEN_TIMEOUT", "10"))
    lease = float(os.environ.get("WORKER_LEASE_TTL", "0")) or LEASE_TTL
    async with httpx.AsyncClient() as http:
        refresher = Refresher(
            store,
            OAuthClient(http, auth_url, time.time, timeout=timeout),
            None,
            time.time,
            None,
            lease_ttl=lease,
            poll_interval=0.05,
            call_timeout=timeout,
            request_wait=timeout + 2 * lease,
        )
        account = store.get(account_id)
        assert account is not None
        print("ready", flush=True)
        while go and not Path(go).exists():
            await asyncio.sleep(0.01)

        async def one() -> str:
            try:
                fresh = await refresher.ensure_fresh(account)
            except PoolError as exc:
                return f"error: {type(exc).__name__}: {exc}"
            return fingerprint(fresh.tokens.access_token)

        results = await asyncio.gather(*(one() for _ in range(callers)))
        await refresher.drain()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1], int(args[2]), int(args[3]), args[4] if len(args) > 4 else None))
