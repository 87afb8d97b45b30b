"""Adding an account: the browser flow (PKCE + a loopback callback server, as the official Codex
client does it) and the device-code flow. Runs on an asyncio loop: the proxy's loop when the window
starts a login through the management API, the CLI's own loop for ``codex-pool login``.

Each flow gets a ticket id; :meth:`LoginService.status` reports pending / done / failed,
:meth:`LoginService.wait` waits for the account, :meth:`LoginService.cancel` stops a flow.

The registered redirect is ``http://localhost:1455/...`` and browsers may resolve ``localhost`` to
either loopback address, so the callback listens on both ``127.0.0.1`` and ``[::1]``. When another
program holds one of them, the sign-in fails at once and names it, rather than letting that program
receive the browser's ``code`` and ``state``. ``/cancel`` needs the flow's ``state`` too, so a
page elsewhere (an ``<img>`` pointing at it) cannot cancel a sign-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import html
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import parse_qs, urlsplit

from tray.auth import pkce
from tray.auth.claims import identity_and_meta
from tray.auth.oauth import DeviceCode, OAuthClient
from tray.errors import LoginError, PoolError
from tray.models import Account, Clock, EventSink, Identity, TokenSet
from tray.portholder import RESERVED_HINT, bind_refusal, held_message, holder, prepare_listener

log = logging.getLogger(__name__)

BROWSER_TIMEOUT = 300.0  # seconds the callback server waits for the browser
DEVICE_POLL_MARGIN = 3.0  # seconds added to the server's poll interval
FINISHED_KEPT = 20  # finished tickets remembered for status()
PORT_TRIES = 5  # a random callback port (tests) whose [::1] twin is taken is tried again


class LoginStore(Protocol):
    """The part of :class:`tray.store.accounts.Store` a login needs."""

    def save_login(
        self,
        identity: Identity,
        tokens: TokenSet,
        email: str | None,
        plan: str | None,
        make_primary: bool = ...,
    ) -> Account: ...


@dataclass(frozen=True)
class LoginTicket:
    id: str
    kind: Literal["browser", "device"]
    url: str  # the authorize URL (browser) or the verification page (device)
    user_code: str | None = None  # device flow: what the user types on the verification page
    expires_at: float | None = None


@dataclass(frozen=True)
class LoginStatus:
    state: Literal["pending", "done", "failed"]
    account: Account | None = None
    message: str | None = None


@dataclass
class _Flow:
    ticket: LoginTicket
    result: asyncio.Future[Account]
    make_primary: bool
    task: asyncio.Task[None] | None = None
    servers: tuple[asyncio.Server, ...] = ()
    # browser flow: what the callback must match, and whether a code is still expected
    state: str = ""
    verifier: str = ""
    redirect: str = ""
    awaiting_code: bool = False


class LoginService:
    def __init__(
        self,
        store: LoginStore,
        oauth: OAuthClient,
        clock: Clock,
        events: EventSink | None = None,
        callback_port: int = pkce.CALLBACK_PORT,
        open_browser: Callable[[str], None] | None = None,
        *,
        browser_timeout: float = BROWSER_TIMEOUT,
        device_poll_margin: float = DEVICE_POLL_MARGIN,
    ) -> None:
        self._store = store
        self._oauth = oauth
        self._clock = clock
        self._events = events
        self._port = callback_port
        self._open_browser = open_browser
        self._browser_timeout = browser_timeout
        self._margin = device_poll_margin
        self._flows: dict[str, _Flow] = {}

    # ---- public face -------------------------------------------------------------------------

    async def start_browser(self, *, make_primary: bool = False) -> LoginTicket:
        """Start the callback server and return the ticket with the URL to open (also opened in the
        system browser when an opener was given). A pending browser login is cancelled first: the
        callback port is shared."""
        for flow in list(self._flows.values()):
            if flow.ticket.kind == "browser" and not flow.result.done():
                self._finish(flow, LoginError("Login cancelled: a new browser login was started"))
        verifier, state = pkce.make_verifier(), pkce.make_state()
        flow_id = secrets.token_urlsafe(8)
        result: asyncio.Future[Account] = asyncio.get_running_loop().create_future()
        servers = await self._serve(flow_id)
        port = int(servers[0].sockets[0].getsockname()[1])
        redirect = pkce.redirect_uri(port)
        url = pkce.authorize_url(self._oauth.auth_url, pkce.challenge(verifier), state, redirect)
        ticket = LoginTicket(flow_id, "browser", url, expires_at=self._clock() + self._browser_timeout)
        flow = _Flow(ticket, result, make_primary, None, servers, state, verifier, redirect, True)
        self._remember(flow)
        flow.task = asyncio.ensure_future(self._expire(flow))
        if self._open_browser is not None:
            try:
                self._open_browser(url)
            except Exception as exc:  # a missing browser must not stop the login: the URL is shown
                log.info("Could not open a browser: %s", exc)
        return ticket

    async def start_device(self, *, make_primary: bool = False) -> LoginTicket:
        """Ask for a device code and start polling; the ticket carries the URL and the user code."""
        device = await self._oauth.device_start()
        flow_id = secrets.token_urlsafe(8)
        ticket = LoginTicket(flow_id, "device", device.verification_url, device.user_code, device.expires_at)
        flow = _Flow(ticket, asyncio.get_running_loop().create_future(), make_primary)
        self._remember(flow)
        flow.task = asyncio.ensure_future(self._poll_device(flow, device))
        return ticket

    def status(self, ticket_id: str) -> LoginStatus:
        flow = self._flow(ticket_id)
        if not flow.result.done():
            return LoginStatus("pending")
        if flow.result.cancelled():
            return LoginStatus("failed", message="Login cancelled")
        error = flow.result.exception()
        if error is not None:
            return LoginStatus("failed", message=str(error))
        return LoginStatus("done", account=flow.result.result())

    def cancel(self, ticket_id: str) -> None:
        flow = self._flow(ticket_id)
        if not flow.result.done():
            self._finish(flow, LoginError("Login cancelled"))

    async def wait(self, ticket_id: str) -> Account:
        """The account once the login succeeds; :class:`LoginError` when it fails or is cancelled."""
        return await asyncio.shield(self._flow(ticket_id).result)

    async def close(self) -> None:
        """Cancel every pending flow and stop the callback server."""
        for flow in list(self._flows.values()):
            if not flow.result.done():
                self._finish(flow, LoginError("Login cancelled"))

    # ---- flows -------------------------------------------------------------------------------

    def _flow(self, ticket_id: str) -> _Flow:
        flow = self._flows.get(ticket_id)
        if flow is None:
            raise LoginError(f"There is no login with ticket {ticket_id!r}")
        return flow

    def _remember(self, flow: _Flow) -> None:
        self._flows[flow.ticket.id] = flow
        finished = [k for k, f in self._flows.items() if f.result.done()]
        for key in finished[: max(0, len(finished) - FINISHED_KEPT)]:
            del self._flows[key]

    def _finish(self, flow: _Flow, outcome: Account | BaseException) -> None:
        if not flow.result.done():
            if isinstance(outcome, BaseException):
                flow.result.set_exception(outcome)
                flow.result.exception()  # retrieved: nobody has to wait() for a cancelled login
            else:
                flow.result.set_result(outcome)
        flow.awaiting_code = False
        for server in flow.servers:
            server.close()  # stops listening; a response being written still completes
        if flow.task is not None and flow.task is not asyncio.current_task():
            flow.task.cancel()

    async def _expire(self, flow: _Flow) -> None:
        await asyncio.sleep(self._browser_timeout)
        minutes = self._browser_timeout / 60
        message = f"Login timed out: no answer from the browser within {minutes:g} minutes"
        self._finish(flow, LoginError(message))

    async def _poll_device(self, flow: _Flow, device: DeviceCode) -> None:
        try:
            while self._clock() < device.expires_at:
                tokens = await self._oauth.device_poll(device)
                if tokens is not None:
                    self._finish(flow, await self._save(tokens, flow.make_primary))
                    return
                await asyncio.sleep(device.interval + self._margin)
            self._finish(flow, LoginError("The device code expired before it was approved"))
        except PoolError as exc:
            self._finish(flow, exc if isinstance(exc, LoginError) else LoginError(str(exc)))
        except Exception as exc:  # never leave a waiter hanging on a bug
            log.exception("device login failed")
            self._finish(flow, LoginError(f"Login failed: {type(exc).__name__}"))

    async def _save(self, tokens: TokenSet, make_primary: bool) -> Account:
        identity, email, plan = identity_and_meta(tokens.id_token, tokens.access_token)
        if identity is None:
            raise LoginError("The login did not say which ChatGPT account and user it belongs to")
        return await asyncio.to_thread(self._store.save_login, identity, tokens, email, plan, make_primary)

    # ---- loopback callback server -------------------------------------------------------------

    async def _serve(self, flow_id: str) -> tuple[asyncio.Server, ...]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _respond(writer, *await self._route(flow_id, reader))

        socks = self._bind()
        return tuple([await asyncio.start_server(handle, sock=sock) for sock in socks])

    def _bind(self) -> list[socket.socket]:
        """Listening sockets on ``127.0.0.1`` and ``[::1]`` (just the first where the machine has no
        IPv6 loopback), on the same port."""
        for attempt in range(PORT_TRIES if self._port == 0 else 1):
            first = _listen(socket.AF_INET, "127.0.0.1", self._port)
            port = int(first.getsockname()[1])
            try:
                return [first, _listen(socket.AF_INET6, "::1", port)]
            except _Unavailable:
                return [first]
            except _Busy as busy:
                first.close()  # first, so the program named below is the one on [::1], not us
                if self._port == 0 and attempt < PORT_TRIES - 1:
                    continue
                said = held_message(port, holder(port)).removeprefix(f"port {port} ")
                raise LoginError(
                    f"Sign-in cannot wait for the browser: [::1]:{port} {said}, so the browser's "
                    f"answer for localhost:{port} could reach it; stop that program and try again"
                ) from busy
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _route(self, flow_id: str, reader: asyncio.StreamReader) -> tuple[int, str, str]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            return 400, "text/plain", "Bad request"
        method, _, rest = head.decode("latin-1").partition(" ")
        try:
            target = urlsplit(rest.partition(" ")[0])
        except ValueError:  # an unclosed IPv6 bracket in the target's authority
            return 400, "text/plain", "Bad request"
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        flow = self._flows.get(flow_id)
        if method != "GET" or flow is None:
            return 405 if flow else 404, "text/plain", "Not found"
        if target.path == "/cancel":
            if not flow.state or query.get("state") != flow.state:
                return 400, "text/plain", "Invalid state"
            self._finish(flow, LoginError("Login cancelled"))
            return 200, "text/plain", "Login cancelled"
        if target.path != pkce.CALLBACK_PATH:
            return 404, "text/plain", "Not found"
        return await self._on_callback(flow, query)

    async def _on_callback(self, flow: _Flow, query: dict[str, str]) -> tuple[int, str, str]:
        if not flow.awaiting_code:
            return 400, "text/html", _page(False, "This sign-in has already finished.")
        if query.get("state") != flow.state:
            return 400, "text/html", _page(False, "Invalid state: this answer does not belong to this login.")
        if "error" in query:
            reason = query.get("error_description") or query["error"]
            self._finish(flow, LoginError(f"Sign-in was refused: {reason}"))
            return 200, "text/html", _page(False, f"Sign-in was refused: {reason}")
        code = query.get("code")
        if not code:
            return 400, "text/html", _page(False, "Missing authorization code.")
        flow.awaiting_code = False
        try:
            tokens = await self._oauth.exchange_code(code, flow.verifier, flow.redirect)
            account = await self._save(tokens, flow.make_primary)
        except PoolError as exc:
            self._finish(flow, exc if isinstance(exc, LoginError) else LoginError(str(exc)))
            return 200, "text/html", _page(False, str(exc))
        self._finish(flow, account)
        return 200, "text/html", _page(True, f"Signed in as {account.name}. You can close this window.")


class _Busy(OSError):
    """The ``[::1]`` twin of the callback port is held by another program."""


class _Unavailable(OSError):
    """The machine has no such loopback address (IPv6 turned off)."""


def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        prepare_listener(sock)  # past TIME_WAIT, never beside a live listener (and exclusive on Windows)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(16)
    except OSError as exc:
        sock.close()
        refusal = bind_refusal(exc)
        if refusal == "in use":
            if family == socket.AF_INET6:
                raise _Busy() from exc
            said = held_message(port, holder(port)).removeprefix(f"port {port} ")  # "is held by ..."
            raise LoginError(f"Port {port} is busy: it {said} (another login, perhaps Codex CLI's?); "
                             "finish or cancel it and try again") from exc
        if refusal == "reserved":
            raise LoginError(f"Port {port} is not available for the sign-in's callback: {RESERVED_HINT}. "
                             "Sign in with a device code instead (Add account (device code), or "
                             "'codex-pool login --device').") from exc
        if family == socket.AF_INET6 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise _Unavailable(str(exc)) from exc
        raise LoginError(f"Could not listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


async def _respond(writer: asyncio.StreamWriter, status: int, content_type: str, body: str) -> None:
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reasons.get(status, 'OK')}\r\nContent-Type: {content_type}; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError):
        writer.write(head.encode("latin-1") + data)
        await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def _page(ok: bool, message: str) -> str:
    title = "codex-pool: signed in" if ok else "codex-pool: sign-in failed"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;margin:3em'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )
