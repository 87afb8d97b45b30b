"""A running codex-pool engine for the management API and web UI tests (tests only).

:func:`running_engine` is :func:`tests.support.proxykit.running_pool` (a real :class:`tray.engine.Engine` on
port 0 in front of the fake chatgpt.com + auth server) with the login service's browser callback on
a free port instead of 1455, so a sign-in test never collides with anything else on the machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from tests.support.proxykit import Pool, running_pool
from tray.auth.login import LoginService
from tray.auth.oauth import OAuthClient


@contextmanager
def running_engine(
    fake_ids: Sequence[str] = (), *, config: Mapping[str, Any] | None = None,
    usage: Mapping[str, Mapping[str, Any]] | None = None,
    open_browser: Callable[[str], None] | None = None,
) -> Iterator[Pool]:
    """``open_browser``: what the browser sign-in opens its page with (default: nothing)."""
    with running_pool(fake_ids, config=config, usage=usage) as pool:
        engine = pool.engine
        assert engine.http is not None
        oauth = OAuthClient(engine.http, engine.config.auth_url, time.time)
        engine.login = LoginService(engine.store, oauth, time.time, engine.events, callback_port=0,
                                    open_browser=open_browser)
        yield pool
