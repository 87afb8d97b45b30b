from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import ServerThread
from tests.support.attacks import run_as, second_user, stop
from tray.auth.login import LoginService
from tray.auth.oauth import OAuthClient
from tray.errors import LoginError
from tray.models import Identity
from tray.store.accounts import Store

ALICE = FakeUser("ws-team", "alice", "alice@example.com", "team")
BOB = FakeUser("ws-team", "bob", "bob@example.com", "team")


def with_service(
    store: Store, url: str, action: Callable[[LoginService], Awaitable[Any]], **options: Any
) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as http:
            oauth = OAuthClient(http, url, time.time, timeout=5)
            options.setdefault("callback_port", 0)
            service = LoginService(store, oauth, time.time, None, **options)
            try:
                return await action(service)
            finally:
                await service.close()

    return asyncio.run(go())


async def play_browser(url: str) -> httpx.Response:
    """What the user's browser does: open the authorize URL and follow the redirect to the callback."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10) as browser:
        return await browser.get(url)


def browser_login(
    store: Store, server: ServerThread, make_primary: bool = False
) -> tuple[Any, httpx.Response]:
    opened: list[str] = []

    async def flow(service: LoginService) -> tuple[Any, httpx.Response]:
        ticket = await service.start_browser(make_primary=make_primary)
        assert opened == [ticket.url]
        assert service.status(ticket.id).state == "pending"
        page = await play_browser(ticket.url)
        account = await service.wait(ticket.id)
        assert service.status(ticket.id).account == account
        return account, page

    result: tuple[Any, httpx.Response] = with_service(store, server.url, flow, open_browser=opened.append)
    return result


def test_browser_flow_end_to_end(store: Store, fake: FakeAuth, server: ServerThread) -> None:
    fake.user = ALICE
    account, page = browser_login(store, server)
    assert page.status_code == 200 and "signed in" in page.text.lower()
    assert "alice@example.com" in page.text
    assert account.identity == Identity("ws-team", "alice")
    assert (account.email, account.plan, account.primary) == ("alice@example.com", "team", True)
    assert fake.code_grants == 1
    assert store.accounts() == [account]


def test_team_members_are_two_accounts_and_relogin_updates(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    fake.user = ALICE
    alice, _ = browser_login(store, server)
    fake.user = BOB
    bob, _ = browser_login(store, server)
    assert alice.id != bob.id and not bob.primary and bob.priority == 1
    fake.user = ALICE
    again, _ = browser_login(store, server)
    assert again.id == alice.id and again.primary
    assert again.tokens.refresh_token != alice.tokens.refresh_token
    assert len(store.accounts()) == 2
    fake.user = BOB
    promoted, _ = browser_login(store, server, make_primary=True)
    assert promoted.id == bob.id and promoted.primary and promoted.priority == 0
    assert [a.primary for a in store.accounts()] == [True, False]


def test_refused_sign_in_shows_an_escaped_error_page(
    store: Store, fake: FakeAuth, server: ServerThread
) -> None:
    fake.authorize_error = "access_denied"

    async def flow(service: LoginService) -> tuple[httpx.Response, Any]:
        ticket = await service.start_browser()
        page = await play_browser(ticket.url)
        with pytest.raises(LoginError, match="refused"):
            await service.wait(ticket.id)
        return page, service.status(ticket.id)

    page, status = with_service(store, server.url, flow)
    assert "&lt;b&gt;access_denied&lt;/b&gt;" in page.text and "<b>" not in page.text
    assert status.state == "failed" and "access_denied" in status.message
    assert store.accounts() == []


def test_forged_state_is_rejected_and_the_login_keeps_waiting(store: Store, server: ServerThread) -> None:
    async def flow(service: LoginService) -> tuple[int, str, int, str | None]:
        ticket = await service.start_browser()
        port = ticket.url.split("localhost%3A")[1].split("%2F")[0]
        async with httpx.AsyncClient() as attacker:
            forged = await attacker.get(f"http://127.0.0.1:{port}/auth/callback?code=x&state=evil")
            nothing = await attacker.get(f"http://127.0.0.1:{port}/favicon.ico")
        pending = service.status(ticket.id).state
        service.cancel(ticket.id)
        return forged.status_code, pending, nothing.status_code, service.status(ticket.id).message

    assert with_service(store, server.url, flow) == (400, "pending", 404, "Login cancelled")


def callback_port(ticket: Any) -> str:
    return str(ticket.url.split("localhost%3A")[1].split("%2F")[0])


def state_of(ticket: Any) -> str:
    return str(parse_qs(urlsplit(ticket.url).query)["state"][0])


def test_cancel_through_the_callback_server_needs_the_state(store: Store, server: ServerThread) -> None:
    async def flow(service: LoginService) -> Any:
        ticket = await service.start_browser()
        port = callback_port(ticket)
        async with httpx.AsyncClient() as browser:
            # What an <img src="http://localhost:1455/cancel"> on any web page sends: refused.
            for query in ("", "?state=guess"):
                refused = await browser.get(f"http://127.0.0.1:{port}/cancel{query}")
                assert refused.status_code == 400
            assert service.status(ticket.id).state == "pending"
            done = await browser.get(f"http://127.0.0.1:{port}/cancel?state={state_of(ticket)}")
            assert done.status_code == 200
        with pytest.raises(LoginError, match="cancelled"):
            await service.wait(ticket.id)

    with_service(store, server.url, flow)


def test_the_callback_listens_on_both_loopback_addresses(store: Store, fake: FakeAuth,
                                                          server: ServerThread) -> None:
    fake.user = ALICE

    async def flow(service: LoginService) -> Any:
        ticket = await service.start_browser()
        port = callback_port(ticket)
        async with httpx.AsyncClient() as browser:  # "localhost" may resolve to ::1 first
            forged = await browser.get(f"http://[::1]:{port}/auth/callback?code=x&state=evil")
            assert forged.status_code == 400
            await browser.get(f"http://[::1]:{port}/cancel?state={state_of(ticket)}")
        with pytest.raises(LoginError, match="cancelled"):
            await service.wait(ticket.id)

    with_service(store, server.url, flow)


def test_a_sign_in_fails_clearly_when_another_user_holds_the_ipv6_callback(
    store: Store, server: ServerThread
) -> None:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    listen = ("import socket, sys\ns = socket.socket(socket.AF_INET6)\ns.bind(('::1', int(sys.argv[1])))\n"
              "s.listen()\nprint('listening', flush=True)\nsys.stdin.read()\n")
    with second_user() as user:
        squatter = run_as(user, listen, str(port))
        try:
            assert squatter.stdout is not None and squatter.stdout.readline().strip() == "listening"

            async def flow(service: LoginService) -> None:
                await service.start_browser()

            with pytest.raises(LoginError) as refused:
                with_service(store, server.url, flow, callback_port=port)
            said = str(refused.value)
            assert f"[::1]:{port} is held by another program (pid {squatter.pid}: " in said, said
            with socket.socket() as free:  # nothing was left listening on 127.0.0.1
                free.bind(("127.0.0.1", port))
        finally:
            stop(squatter)


def test_busy_port_is_a_clear_error(store: Store, server: ServerThread) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def flow(service: LoginService) -> None:
            await service.start_browser()

        with pytest.raises(LoginError, match=f"Port {port} is busy"):
            with_service(store, server.url, flow, callback_port=port)


def test_browser_login_times_out(store: Store, server: ServerThread) -> None:
    async def flow(service: LoginService) -> Any:
        ticket = await service.start_browser()
        with pytest.raises(LoginError, match="timed out"):
            await service.wait(ticket.id)

    with_service(store, server.url, flow, browser_timeout=0.2)


def test_device_flow(store: Store, fake: FakeAuth, server: ServerThread) -> None:
    async def flow(service: LoginService) -> Any:
        ticket = await service.start_device(make_primary=True)
        assert ticket.url == server.url + "/codex/device" and ticket.user_code
        await asyncio.sleep(0.1)
        assert service.status(ticket.id).state == "pending"
        fake.approve(ticket.user_code, BOB)
        return await service.wait(ticket.id)

    account = with_service(store, server.url, flow, device_poll_margin=0)
    assert account.identity == Identity("ws-team", "bob") and account.primary
    assert fake.device_polls >= 2


def test_device_code_expiry(store: Store, fake: FakeAuth, server: ServerThread) -> None:
    fake.device_expires_in = 1

    async def flow(service: LoginService) -> Any:
        ticket = await service.start_device()
        with pytest.raises(LoginError, match="expired"):
            await service.wait(ticket.id)

    with_service(store, server.url, flow, device_poll_margin=0)
    assert store.accounts() == []


def test_unknown_ticket(store: Store, server: ServerThread) -> None:
    async def flow(service: LoginService) -> Any:
        return service.status("nope")

    with pytest.raises(LoginError, match="no login"):
        with_service(store, server.url, flow)


def test_a_request_line_urlsplit_cannot_read_gets_a_400_and_the_login_keeps_waiting(
    store: Store, server: ServerThread
) -> None:
    # "//[" has an unclosed IPv6 bracket in its authority: urlsplit raised and the callback
    # server dropped the connection without an answer.
    async def flow(service: LoginService) -> tuple[bytes, str]:
        ticket = await service.start_browser()
        reader, writer = await asyncio.open_connection("127.0.0.1", int(callback_port(ticket)))
        writer.write(b"GET //[/auth/callback?code=x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        pending = service.status(ticket.id).state
        service.cancel(ticket.id)
        return answer.split(b"\r\n", 1)[0], pending

    assert with_service(store, server.url, flow) == (b"HTTP/1.1 400 Bad Request", "pending")
