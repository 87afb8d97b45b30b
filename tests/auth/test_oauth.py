from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.fakes.runner import ServerThread
from tray.auth import pkce
from tray.auth.claims import identity_and_meta
from tray.auth.oauth import DeviceCode, OAuthClient, error_code
from tray.errors import LoginError, PermanentRefreshError, TransientRefreshError


def run(url: str, action: Any, timeout: float = 5.0) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as http:
            return await action(OAuthClient(http, url, time.time, timeout=timeout))

    return asyncio.run(go())


def test_exchange_code_from_the_authorize_redirect(fake: FakeAuth, server: ServerThread) -> None:
    verifier, state = pkce.make_verifier(), pkce.make_state()
    redirect = pkce.redirect_uri(1455)
    url = pkce.authorize_url(server.url, pkce.challenge(verifier), state, redirect)
    answer = httpx.get(url, follow_redirects=False)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == [state]
    tokens = run(server.url, lambda c: c.exchange_code(query["code"][0], verifier, redirect))
    identity, email, plan = identity_and_meta(tokens.id_token, tokens.access_token)
    assert identity is not None and identity.subject == "user-1"
    assert (email, plan) == ("one@example.com", "plus")
    assert tokens.expires_at > time.time() + 3000
    assert fake.code_grants == 1


def test_exchange_with_wrong_verifier_is_a_login_error(fake: FakeAuth, server: ServerThread) -> None:
    redirect = pkce.redirect_uri(1455)
    url = pkce.authorize_url(server.url, pkce.challenge(pkce.make_verifier()), "s", redirect)
    code = parse_qs(urlsplit(httpx.get(url).headers["location"]).query)["code"][0]
    with pytest.raises(LoginError, match="HTTP 400"):
        run(server.url, lambda c: c.exchange_code(code, pkce.make_verifier(), redirect))


def test_refresh_rotates_and_a_consumed_token_is_permanent(fake: FakeAuth, server: ServerThread) -> None:
    old = fake.token_set()
    new = run(server.url, lambda c: c.refresh(old.refresh_token))
    assert new.refresh_token != old.refresh_token and new.access_token != old.access_token
    with pytest.raises(PermanentRefreshError) as caught:
        run(server.url, lambda c: c.refresh(old.refresh_token))
    assert caught.value.code == "refresh_token_reused"
    assert old.refresh_token not in str(caught.value)
    assert (fake.refresh_grants, fake.reuse_attempts) == (1, 1)


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(fake: FakeAuth, server: ServerThread) -> None:
    old = fake.token_set()
    fake.omit_refresh_token = True
    new = run(server.url, lambda c: c.refresh(old.refresh_token))
    assert new.refresh_token == old.refresh_token
    assert new.access_token != old.access_token


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, {"error": "invalid_grant"}, "invalid_grant"),
        (401, {"error": {"code": "refresh_token_expired", "message": "expired"}}, "refresh_token_expired"),
        (400, {"error": "bad", "error_description": "token_invalidated: x"}, "token_invalidated"),
        (401, {"error": {"code": "token_expired"}}, "token_expired"),
        (403, {"error": {"code": "account_deactivated"}}, "account_deactivated"),
        (401, {"error": {"message": "app_session_terminated"}}, "app_session_terminated"),
    ],
)
def test_permanent_failures(fake: FakeAuth, server: ServerThread, status: int, body: Any, code: str) -> None:
    fake.refresh_failures.append((status, body))
    with pytest.raises(PermanentRefreshError) as caught:
        run(server.url, lambda c: c.refresh(fake.token_set().refresh_token))
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, {"error": "server_error"}), (503, "overloaded"), (429, {"error": "slow_down"}), (400, "not json")],
)
def test_transient_failures(fake: FakeAuth, server: ServerThread, status: int, body: Any) -> None:
    fake.refresh_failures.append((status, body))
    with pytest.raises(TransientRefreshError):
        run(server.url, lambda c: c.refresh(fake.token_set().refresh_token))


def test_unreachable_and_slow_servers_are_transient(fake: FakeAuth, server: ServerThread) -> None:
    closed = ServerThread(fake.app)
    closed.sock.close()  # a port nobody listens on
    with pytest.raises(TransientRefreshError, match="failed"):
        run(closed.url, lambda c: c.refresh("rt"))
    fake.token_delay = 3.0
    with pytest.raises(TransientRefreshError, match="timed out"):
        run(server.url, lambda c: c.refresh(fake.token_set().refresh_token), timeout=0.3)


def test_the_fake_redeems_on_arrival_so_a_client_that_gave_up_has_spent_its_token(
    fake: FakeAuth, server: ServerThread
) -> None:
    # Like the real server: the rotation happens when the request arrives; a slow answer the client
    # stopped waiting for is still a rotation, and presenting the old token again is a reuse.
    old = fake.token_set()
    fake.token_delay = 2.0
    with pytest.raises(TransientRefreshError, match="timed out"):
        run(server.url, lambda c: c.refresh(old.refresh_token), timeout=0.3)
    deadline = time.monotonic() + 10
    while fake.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (fake.refresh_grants, fake.abandoned, fake.lost_rotations) == (1, 1, 1)
    fake.token_delay = 0.0
    with pytest.raises(PermanentRefreshError, match="refresh_token_reused"):
        run(server.url, lambda c: c.refresh(old.refresh_token))
    assert fake.reuse_attempts == 1
    assert not any(user.account_id == fake.user.account_id for user in fake.live.values())  # family revoked


def test_the_fakes_two_kinds_of_transient_fault(fake: FakeAuth, server: ServerThread) -> None:
    refused, failed = fake.token_set(), fake.token_set()
    fake.refresh_failures.append((503, {"error": "overloaded"}))  # refused before redemption
    with pytest.raises(TransientRefreshError):
        run(server.url, lambda c: c.refresh(refused.refresh_token))
    assert refused.refresh_token in fake.live  # still good: it was never redeemed
    assert run(server.url, lambda c: c.refresh(refused.refresh_token)).access_token
    fake.failures_after_redemption.append((502, {"error": "bad_gateway"}))  # rotated, then failed
    with pytest.raises(TransientRefreshError):
        run(server.url, lambda c: c.refresh(failed.refresh_token))
    assert failed.refresh_token in fake.consumed
    with pytest.raises(PermanentRefreshError, match="refresh_token_reused"):
        run(server.url, lambda c: c.refresh(failed.refresh_token))
    assert (fake.refresh_grants, fake.failed_after_redemption, fake.lost_rotations) == (2, 1, 1)


def test_device_flow_pending_then_approved(fake: FakeAuth, server: ServerThread) -> None:
    async def flow(client: OAuthClient) -> tuple[DeviceCode, Any, Any]:
        device = await client.device_start()
        pending = await client.device_poll(device)
        fake.approve(device.user_code, FakeUser("acc-d", "user-d", "d@example.com", "pro"))
        return device, pending, await client.device_poll(device)

    device, pending, tokens = run(server.url, flow)
    assert device.verification_url == server.url + "/codex/device"
    assert device.interval == 1.0 and device.expires_at > time.time() + 800
    assert pending is None
    assert identity_and_meta(tokens.id_token, tokens.access_token)[1] == "d@example.com"


def test_device_denied_is_a_login_error(fake: FakeAuth, server: ServerThread) -> None:
    async def flow(client: OAuthClient) -> Any:
        device = await client.device_start()
        fake.deny(device.user_code)
        return await client.device_poll(device)

    with pytest.raises(LoginError, match="HTTP 400"):
        run(server.url, flow)


def test_error_code_ignores_unknown_codes() -> None:
    assert error_code({"error": "invalid_request"}) is None
    assert error_code(["refresh_token_reused"]) is None
    assert error_code({"code": "refresh_token_reused"}) == "refresh_token_reused"
