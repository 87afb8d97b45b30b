"""Management API endpoint that restarts the proxy, for the settings that only apply then.

``host``, ``port`` and ``allow-remote`` are saved at once but the proxy keeps listening where it
started; the settings answers name them under ``pending_restart``. ``POST /api/proxy/restart``
binds the new address first (a port another program holds is refused with 409 and the reason,
and nothing stops; a bound one queues connections from then on), answers with where the proxy
will be, then restarts it on a thread of its own: stopping waits for the requests on the proxy's
loop, this one included, so it cannot run there.

The answer: ``url`` (the proxy's new address), ``same`` (whether it stays where it is) and
``ui_url``, the window's new address with a fresh one-time code: a page on the old address cannot
call the new one (the page's policy allows its own origin only), so it opens that instead.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tray.api.base import error, ok
from tray.api.sessions import Sessions
from tray.errors import PoolError, ServerError

log = logging.getLogger(__name__)

RESTART_SETTINGS = ("host", "port", "allow-remote")  # keys that take effect when the proxy restarts


class RestartableEngine(Protocol):
    """What the endpoint needs from :class:`tray.engine.Engine`."""

    sessions: Sessions

    @property
    def url(self) -> str: ...

    def pending_restart(self) -> list[str]: ...

    def reserve_address(self) -> tuple[str, socket.socket]: ...

    def restart(self, sock: socket.socket | None = None) -> str: ...


class RestartApi:
    def __init__(self, engine: RestartableEngine) -> None:
        self.engine = engine
        self._lock = threading.Lock()  # one restart at a time

    async def restart(self, request: Request) -> Response:
        if not self._lock.acquire(blocking=False):
            return error(409, "The proxy is restarting already.")
        try:
            url, sock = await run_in_threadpool(self.engine.reserve_address)
        except ServerError as exc:
            self._lock.release()
            return error(409, f"Not restarted: {exc}")
        same = url == self.engine.url
        code = self.engine.sessions.mint()
        threading.Thread(target=self._run, args=(sock,), name="codex-pool-restart", daemon=True).start()
        return ok({"url": url, "same": same, "ui_url": f"{url}/ui/#code={code}&page=settings"}, 202)

    def _run(self, sock: socket.socket) -> None:
        try:
            url = self.engine.restart(sock)
        except PoolError as exc:
            log.warning("Restarting the proxy failed: %s", exc)
        else:
            log.info("The proxy restarted on %s", url)
        finally:
            self._lock.release()


def restart_routes(engine: RestartableEngine) -> list[Route]:
    api = RestartApi(engine)
    return [Route("/proxy/restart", api.restart, methods=["POST"])]
