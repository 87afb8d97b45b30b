"""The pool window's page at ``/ui/``: the static files of ``tray/ui``, served only to requests that
name the proxy's own loopback address, with the headers that keep other sites from using them.

* ``Content-Security-Policy``: the page's scripts, styles and API calls come from the proxy itself
  and nowhere else; ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` stop a page on another
  site from framing the window and tricking clicks into it (click-jacking).
* ``X-Content-Type-Options: nosniff``: a file is only ever run as the type it is served as.
* ``Referrer-Policy: no-referrer``: links out of the window (the sign-in page) do not carry its
  address, which holds a one-time code while the page starts.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from importlib import resources

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tray.proxy import AccessPolicy, OriginGuard

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


class PageHeaders:
    """ASGI wrapper: adds :data:`HEADERS` to every answer of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def ui_routes(policy: Callable[[], AccessPolicy]) -> list[BaseRoute]:
    """The ``/ui`` mount, or nothing when the package was built without its web assets."""
    # The UI is ES modules, which browsers only run when served as JavaScript; Windows registries
    # sometimes map .js to text/plain, and StaticFiles asks mimetypes. Pin the types we ship.
    for suffix, kind in ((".js", "text/javascript"), (".css", "text/css"), (".svg", "image/svg+xml")):
        mimetypes.add_type(kind, suffix)
    folder = resources.files("tray") / "ui"
    if not folder.is_dir():
        return []
    static = StaticFiles(directory=str(folder), html=True)
    return [Mount("/ui", app=OriginGuard(PageHeaders(static), policy), name="ui")]
