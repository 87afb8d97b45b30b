"""Management API endpoints for adding an account: browser and device-code sign-in, and re-login.

The flows run in :class:`tray.auth.login.LoginService` on the proxy's event loop; these handlers start
them, report their state by ticket id and cancel them. A ticket answer carries the URL to open (and
the user code for the device flow), never a token; a finished one names the account and whether
it was in the pool already (``again``: the window says "Signed in again as ...").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tray.api.base import BadRequest, account_id, error, field, json_body, ok, threaded
from tray.api.views import account_view
from tray.errors import AccountNotFoundError, LoginError

if TYPE_CHECKING:
    from tray.api.base import ManagedEngine

STATES = {"pending": "waiting", "done": "done", "failed": "failed"}
KEPT = 50  # tickets remembered for status answers


class LoginApi:
    def __init__(self, engine: ManagedEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.relogins: dict[str, int] = {}  # ticket id -> the account the user meant to sign in again
        self.tickets: dict[str, dict[str, Any]] = {}  # ticket id -> what was shown when it started

    def _service(self) -> Any:
        service = getattr(self.engine, "login", None)
        if service is None:
            raise LoginError("Signing in is not available in this codex-pool process.")
        return service

    def _ticket_view(self, ticket: Any, status: str = "waiting") -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": ticket.id,
            "kind": ticket.kind,
            "status": status,
            "expires_at": ticket.expires_at,
            "started_at": self.clock(),
        }
        if ticket.kind == "browser":
            view["authorize_url"] = ticket.url
        else:
            view["verification_url"] = ticket.url
            view["user_code"] = ticket.user_code
        self.tickets[ticket.id] = view
        for old in list(self.tickets)[:-KEPT]:
            self.tickets.pop(old, None)
            self.relogins.pop(old, None)
        return view

    async def _start(self, kind: str, make_primary: bool) -> dict[str, Any]:
        service = self._service()
        if kind == "browser":
            ticket = await service.start_browser(make_primary=make_primary)
        else:
            ticket = await service.start_device(make_primary=make_primary)
        return self._ticket_view(ticket)

    @staticmethod
    def _options(body: dict[str, Any]) -> bool:
        return bool(field(body, "primary", bool, "true or false")) if "primary" in body else False

    async def browser(self, request: Request) -> Response:
        return ok({"ticket": await self._start("browser", self._options(await json_body(request)))}, 201)

    async def device(self, request: Request) -> Response:
        return ok({"ticket": await self._start("device", self._options(await json_body(request)))}, 201)

    async def relogin(self, request: Request) -> Response:
        body = await json_body(request)
        method = body.get("method", "browser")
        if method not in ("browser", "device"):
            raise BadRequest("'method' must be \"browser\" or \"device\".")
        ident = account_id(request)
        if await threaded(self.engine.store.get, ident) is None:  # off the loop: the pool file may be busy
            raise AccountNotFoundError(f"There is no account with id {ident}.")
        ticket = await self._start(method, False)
        self.relogins[ticket["id"]] = ident
        ticket["relogin_of"] = ident
        return ok({"ticket": ticket}, 201)

    def _flow(self, request: Request) -> tuple[Any, str]:
        service, ticket_id = self._service(), request.path_params["ticket"]
        try:
            return service.status(ticket_id), ticket_id
        except LoginError:
            raise _NoTicket(ticket_id) from None

    def _status_view(self, ticket_id: str, status: Any) -> dict[str, Any]:
        view = dict(self.tickets.get(ticket_id, {"id": ticket_id}))
        if ticket_id in self.relogins:
            view["relogin_of"] = self.relogins[ticket_id]
        view["status"] = STATES.get(status.state, status.state)
        if status.message:
            view["error"] = status.message
        if status.account is not None:
            now = self.clock()
            store = self.engine.store
            view["account"] = account_view(status.account, None, store.usage(status.account.id), now)
            # An account that was in the pool before this sign-in started was signed in again.
            view["again"] = status.account.created_at < view.get("started_at", now)
            wanted = self.relogins.get(ticket_id)
            if wanted is not None and wanted != status.account.id:
                view["note"] = (
                    f"You signed in as {status.account.name}, a different account, so it was added to the "
                    "pool; the account that needed a new login still needs one."
                )
        return view

    async def status(self, request: Request) -> Response:
        try:
            status, ticket_id = self._flow(request)
        except _NoTicket as exc:
            return error(404, str(exc))
        # The view reads the account's usage from the pool file: off the event loop.
        return ok({"ticket": await threaded(self._status_view, ticket_id, status)})

    async def cancel(self, request: Request) -> Response:
        try:
            status, ticket_id = self._flow(request)
        except _NoTicket as exc:
            return error(404, str(exc))
        if status.state == "pending":
            self._service().cancel(ticket_id)
            status = self._service().status(ticket_id)
        # The view reads the account's usage from the pool file: off the event loop.
        return ok({"ticket": await threaded(self._status_view, ticket_id, status)})


class _NoTicket(LoginError):
    def __init__(self, ticket_id: str) -> None:
        super().__init__("There is no sign-in with that ticket (it may have finished long ago).")
        self.ticket_id = ticket_id


def login_routes(engine: ManagedEngine, clock: Callable[[], float] = time.time) -> list[Route]:
    login = LoginApi(engine, clock)
    return [
        Route("/login/browser", login.browser, methods=["POST"]),
        Route("/login/device", login.device, methods=["POST"]),
        Route("/login/{ticket}", login.status, methods=["GET"]),
        Route("/login/{ticket}", login.cancel, methods=["DELETE"]),
        Route("/accounts/{account_id}/relogin", login.relogin, methods=["POST"]),
    ]
