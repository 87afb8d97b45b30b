"""The management API over a real loopback socket: every endpoint, the token/Host/Origin door, and
bad requests that change nothing."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.apphost import running_engine
from tests.fakes.auth_server import FakeUser
from tests.fakes.seed import add_account, cool_down, put_usage, record
from tests.support.proxykit import Pool
from tray.models import AccountState


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_engine() as running:
        yield running


@pytest.fixture
def engine(pool: Pool) -> Any:
    return pool.engine


@pytest.fixture
def api(engine: Any) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=engine.url + "/api", headers={"X-Codex-Pool-Token": engine.ui_token}, timeout=10
    ) as client:
        yield client


def names(api: httpx.Client) -> list[str]:
    return [a["name"] for a in api.get("/accounts").json()["accounts"]]


def no_secrets(payload: Any, engine: Any) -> None:
    text = json.dumps(payload)
    assert "rt-secret" not in text
    assert "tokens" not in text
    assert "access_token" not in text and "refresh_token" not in text
    for account in engine.store.accounts():
        assert account.tokens.access_token not in text


# ---- the door ------------------------------------------------------------------------------------


def test_refuses_without_the_management_token(engine: Any) -> None:
    r = httpx.get(engine.url + "/api/accounts")
    assert r.status_code == 401
    assert "tray menu" in r.json()["error"]


def test_refuses_the_client_key_in_place_of_the_token(engine: Any) -> None:
    for headers in (
        {"Authorization": f"Bearer {engine.api_key}"},
        {"X-Codex-Pool-Token": engine.api_key},
        {"x-api-key": engine.api_key},
    ):
        r = httpx.get(engine.url + "/api/accounts", headers=headers)
        assert r.status_code == 401, headers
        assert engine.api_key not in r.text


def test_accepts_bearer_and_header_token(engine: Any) -> None:
    for headers in ({"Authorization": f"Bearer {engine.ui_token}"}, {"X-Codex-Pool-Token": engine.ui_token}):
        assert httpx.get(engine.url + "/api/status", headers=headers).status_code == 200


def test_refuses_foreign_host_origin_and_preflight(engine: Any) -> None:
    token = {"X-Codex-Pool-Token": engine.ui_token}
    port = engine.url.rsplit(":", 1)[1]
    rebinding = httpx.get(engine.url + "/api/status", headers={**token, "Host": f"evil.example:{port}"})
    assert rebinding.status_code == 403
    wrong_port = httpx.get(engine.url + "/api/status", headers={**token, "Host": "127.0.0.1:1"})
    assert wrong_port.status_code == 403
    foreign = httpx.get(engine.url + "/api/status", headers={**token, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert "access-control-allow-origin" not in foreign.headers
    null_origin = httpx.get(engine.url + "/api/status", headers={**token, "Origin": "null"})
    assert null_origin.status_code == 403
    preflight = httpx.options(
        engine.url + "/api/accounts/1",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "x-codex-pool-token",
        },
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    own = httpx.get(engine.url + "/api/status", headers={**token, "Origin": engine.url})
    assert own.status_code == 200


def test_foreign_origin_cannot_delete(engine: Any, api: httpx.Client) -> None:
    add_account(engine.store, "one@example.com")
    r = httpx.delete(
        engine.url + "/api/accounts/1",
        headers={"X-Codex-Pool-Token": engine.ui_token, "Origin": "http://localhost:9"},
    )
    assert r.status_code == 403
    assert names(api) == ["one@example.com"]


def redeem(engine: Any, code: str) -> httpx.Response:
    return httpx.post(engine.url + "/api/session", json={"code": code}, trust_env=False)


def test_a_window_code_opens_one_session_once(engine: Any) -> None:
    code = engine.ui_url.split("#code=", 1)[1]
    first = redeem(engine, code)
    assert first.status_code == 200
    session = first.json()["session"]
    assert session.startswith("cps-") and engine.ui_token not in first.text
    status = httpx.get(engine.url + "/api/status", headers={"X-Codex-Pool-Session": session}, trust_env=False)
    assert status.status_code == 200
    again = redeem(engine, code)  # the same link from history, a screenshot, another tab
    assert again.status_code == 401 and "session" not in again.json()
    for wrong in ("cpc-made-up", engine.api_key, engine.ui_token, ""):
        assert redeem(engine, wrong).status_code == 401
    for fake in ("cps-made-up", code, engine.api_key):
        refused = httpx.get(engine.url + "/api/status", headers={"X-Codex-Pool-Session": fake},
                            trust_env=False)
        assert refused.status_code == 401


def test_a_session_is_refused_on_the_proxy_and_from_another_origin(engine: Any) -> None:
    session = redeem(engine, engine.sessions.mint()).json()["session"]
    proxy = httpx.get(engine.url + "/v1/models", headers={"Authorization": f"Bearer {session}"},
                      trust_env=False)
    assert proxy.status_code == 401
    foreign = httpx.post(engine.url + "/api/session", json={"code": engine.sessions.mint()},
                         headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                         trust_env=False)
    assert foreign.status_code == 403 and "session" not in foreign.text


def test_the_owner_challenge_needs_the_owner_token_and_this_port(engine: Any) -> None:
    from tray.api.owner import probe
    from tray.api.sessions import client_proof, server_proof

    port = int(engine.url.rsplit(":", 1)[1])
    hello = httpx.post(engine.url + "/api/owner/hello", json={"nonce": "n" * 24}, trust_env=False).json()
    assert hello["proof"] == server_proof(engine.ui_token, port, "n" * 24, hello["nonce"])
    assert hello["proof"] != server_proof(engine.ui_token, port + 1, "n" * 24, hello["nonce"])
    for wrong in (client_proof("cpmt-guess", port, "n" * 24, hello["nonce"]),
                  client_proof(engine.ui_token, port + 1, "n" * 24, hello["nonce"]), hello["proof"]):
        answer = httpx.post(engine.url + "/api/owner/code", json={"nonce": hello["nonce"], "proof": wrong},
                            trust_env=False)
        assert answer.status_code == 401 and "code" not in answer.json()
    # The first wrong answer spent the challenge: even the right proof is now refused.
    right = client_proof(engine.ui_token, port, "n" * 24, hello["nonce"])
    assert httpx.post(engine.url + "/api/owner/code", json={"nonce": hello["nonce"], "proof": right},
                      trust_env=False).status_code == 401
    owner = probe(engine.url, engine.ui_token, want_code=True)
    assert owner.state == "ours" and owner.code is not None
    assert redeem(engine, owner.code).status_code == 200
    assert probe(engine.url, "cpmt-not-the-token").state == "other"


def test_management_token_does_not_open_the_proxy(engine: Any) -> None:
    r = httpx.get(engine.url + "/v1/models", headers={"Authorization": f"Bearer {engine.ui_token}"})
    assert r.status_code == 401


def test_unknown_endpoint_and_wrong_method_are_json(api: httpx.Client) -> None:
    r = api.get("/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = api.post("/status")
    assert r.status_code == 405 and "error" in r.json()


# ---- status and accounts ---------------------------------------------------------------------


def test_status_reports_url_key_and_health(engine: Any, api: httpx.Client) -> None:
    empty = api.get("/status").json()
    assert empty["proxy_url"] == engine.url
    assert empty["api_key"] == engine.api_key
    assert empty["health"]["state"] == "empty"
    one = add_account(engine.store, "one@example.com")
    two = add_account(engine.store, "two@example.com")
    put_usage(engine.store, one, 10, 20)
    put_usage(engine.store, two, 10, 20)
    assert api.get("/status").json()["health"]["state"] == "healthy"
    cool_down(engine.store, two)
    health = api.get("/status").json()["health"]
    assert health["state"] == "degraded" and health["usable"] == 1
    cool_down(engine.store, one)
    health = api.get("/status").json()["health"]
    assert health["state"] == "exhausted" and health["soonest_reset"] is not None


def test_accounts_list_with_quota_windows_and_no_tokens(engine: Any, api: httpx.Client) -> None:
    one = add_account(engine.store, "one@example.com", plan="pro")
    two = add_account(engine.store, "two@example.com")
    put_usage(engine.store, one, 42, 71)
    cool_down(engine.store, two)
    data = api.get("/accounts").json()
    first, second = data["accounts"]
    assert (first["email"], first["plan"], first["role"], first["status"]) == (
        "one@example.com", "pro", "primary", "ready"
    )
    windows = {w["label"]: w for w in first["quota"]["windows"]}
    assert windows["5h"]["used_percent"] == 42 and windows["weekly"]["used_percent"] == 71
    assert windows["5h"]["reset_at"] > data["now"]
    assert second["role"] == "pool" and second["status"] == "cooling"
    assert second["cooldown_until"] > data["now"] and second["quota"]["known"] is False
    no_secrets(data, engine)


def test_relabel_enable_disable(engine: Any, api: httpx.Client) -> None:
    one = add_account(engine.store, "one@example.com")
    r = api.patch(f"/accounts/{one.id}", json={"label": "Work"})
    assert r.status_code == 200 and r.json()["account"]["name"] == "Work"
    r = api.patch(f"/accounts/{one.id}", json={"enabled": False})
    assert r.json()["account"]["status"] == "disabled"
    assert engine.store.get(one.id).state is AccountState.DISABLED
    r = api.patch(f"/accounts/{one.id}", json={"enabled": True, "label": None})
    assert r.json()["account"]["status"] == "ready" and r.json()["account"]["name"] == "one@example.com"
    no_secrets(r.json(), engine)


def test_bad_patches_change_nothing(engine: Any, api: httpx.Client) -> None:
    one = add_account(engine.store, "one@example.com")
    api.patch(f"/accounts/{one.id}", json={"label": "Work"})
    for body in ({"label": 5}, {"enabled": "yes"}, {"label": "x" * 101}, {"colour": "red"},
                 {"label": "New", "enabled": "no"}):
        r = api.patch(f"/accounts/{one.id}", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]
    assert api.patch(f"/accounts/{one.id}", content=b"{not json").status_code == 400
    assert api.patch(f"/accounts/{one.id}", content=b"[1]").status_code == 400
    assert api.patch("/accounts/99", json={"label": "x"}).status_code == 404
    assert api.patch("/accounts/abc", json={"label": "x"}).status_code == 400
    assert api.patch("/accounts/99999999999999999999999", json={"label": "x"}).status_code == 400
    assert api.patch("/accounts/-1", json={"label": "x"}).status_code == 400
    assert api.patch(f"/accounts/{one.id}", content=b"[" * 100000).status_code == 400
    huge = b'{"label": "' + b"x" * 2_000_000 + b'"}'
    assert api.patch(f"/accounts/{one.id}", content=huge).status_code in (400, 413)
    account = engine.store.get(one.id)
    assert account.label == "Work" and account.state is AccountState.ENABLED


def test_needs_login_cannot_be_enabled_without_relogin(engine: Any, api: httpx.Client) -> None:
    one = add_account(engine.store, "one@example.com")
    engine.store.set_state(one.id, AccountState.NEEDS_LOGIN, "refresh_token_reused")
    r = api.patch(f"/accounts/{one.id}", json={"enabled": True, "label": "Kept?"})
    assert r.status_code == 409 and "sign-in" in r.json()["error"]
    account = engine.store.get(one.id)
    assert account.state is AccountState.NEEDS_LOGIN and account.label is None
    view = api.get("/accounts").json()["accounts"][0]
    assert view["status"] == "needs_login" and view["reason"] == "refresh_token_reused"


def test_move_primary_and_remove(engine: Any, api: httpx.Client) -> None:
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        add_account(engine.store, email)
    c = engine.store.accounts()[2]
    assert api.post(f"/accounts/{c.id}/move", json={"index": 0}).status_code == 200
    assert names(api) == ["c@example.com", "a@example.com", "b@example.com"]
    b = engine.store.accounts()[2]
    r = api.post(f"/accounts/{b.id}/primary")
    assert r.status_code == 200
    first = r.json()["accounts"][0]
    assert first["name"] == "b@example.com" and first["role"] == "primary"
    r = api.delete(f"/accounts/{c.id}")
    assert r.status_code == 200
    assert names(api) == ["b@example.com", "a@example.com"]
    assert [a.priority for a in engine.store.accounts()] == [0, 1]


def test_bad_moves_and_removes_change_nothing(engine: Any, api: httpx.Client) -> None:
    for email in ("a@example.com", "b@example.com"):
        add_account(engine.store, email)
    a = engine.store.accounts()[0]
    for body in ({}, {"index": "1"}, {"index": -1}, {"index": 1.5}, {"index": True}):
        assert api.post(f"/accounts/{a.id}/move", json=body).status_code == 400, body
    assert api.post("/accounts/77/move", json={"index": 0}).status_code == 404
    assert api.post("/accounts/77/primary").status_code == 404
    assert api.delete("/accounts/77").status_code == 404
    assert names(api) == ["a@example.com", "b@example.com"]


def test_activity_lists_recent_decisions(engine: Any, api: httpx.Client) -> None:
    one = add_account(engine.store, "one@example.com")
    two = add_account(engine.store, "two@example.com")
    record(engine.store, one, [two])
    record(engine.store, two, [one], reason="failover after 429")
    rows = api.get("/activity", params={"limit": 10}).json()["decisions"]
    assert [r["reason"] for r in rows] == ["failover after 429", "higher score"]
    assert rows[0]["account"] == "two@example.com" and rows[0]["status"] == 200
    assert [s["name"] for s in rows[1]["scores"]] == ["one@example.com", "two@example.com"]
    assert len(api.get("/activity", params={"limit": 1}).json()["decisions"]) == 1
    for bad in ("0", "x", "100000"):
        assert api.get("/activity", params={"limit": bad}).status_code == 400


# ---- settings ----------------------------------------------------------------------------------


def test_settings_lists_every_key_with_help(engine: Any, api: httpx.Client) -> None:
    from tray import config

    data = api.get("/settings").json()
    for key in config.KEYS:
        if key.startswith("notifications."):
            assert key.split(".", 1)[1] in data["values"]["notifications"]
        else:
            assert key in data["values"], key
        assert data["help"][key]
    assert data["values"]["sticky-mode"] == "auto"
    assert data["path"] == str(engine.paths.config_file)


def test_settings_show_the_forward_proxy_without_its_password(engine: Any, api: httpx.Client) -> None:
    path = engine.paths.config_file
    path.write_text(path.read_text() + 'upstream-proxy = "http://corp-user:pr0xy-pw@proxy.corp:3128"\n')
    engine.reload_config()
    answer = api.get("/settings")
    assert answer.json()["values"]["upstream-proxy"] == "http://***@proxy.corp:3128"
    assert "upstream-proxy" in answer.json()["file_only"]
    assert "pr0xy-pw" not in answer.text
    path.write_text(path.read_text().replace("http://corp-user:pr0xy-pw@proxy.corp:3128", "ftp://u:pr0xy-pw@x"))
    engine.reload_config()
    answer = api.get("/settings")
    assert any("upstream-proxy" in p for p in answer.json()["problems"]) and "pr0xy-pw" not in answer.text


def test_valid_settings_are_saved_and_applied(engine: Any, api: httpx.Client) -> None:
    r = api.put("/settings", json={"values": {"sticky-mode": "disabled", "fast-mode-bias": 0.02,
                                              "notifications": {"quota-low": True}}})
    assert r.status_code == 200, r.text
    assert r.json()["values"]["sticky-mode"] == "disabled"
    on_disk = tomllib.loads(engine.paths.config_file.read_text())
    assert on_disk["sticky-mode"] == "disabled" and on_disk["notifications"]["quota-low"] is True
    assert engine.config.sticky_mode == "disabled"
    assert engine.config.notifications.quota_low is True


def test_invalid_settings_name_each_field_and_write_nothing(engine: Any, api: httpx.Client) -> None:
    path = engine.paths.config_file
    before = path.read_text()
    r = api.put("/settings", json={"values": {"sticky-mode": "sometimes", "port": 70000, "fast-mode": "auto",
                                              "max-body-mb": -1, "host": "10.1.2.3", "bogus": 1,
                                              "notifications": {"quota-low": "yes"}}})
    assert r.status_code == 400
    problems = r.json()["problems"]
    assert set(problems) == {"sticky-mode", "port", "max-body-mb", "host", "bogus",
                             "notifications.quota-low"}
    assert "sticky-mode" in problems["sticky-mode"]
    assert path.read_text() == before
    assert engine.config.sticky_mode == "auto"
    for bad in (b"[]", b"{}", b"nope"):
        assert api.put("/settings", content=bad).status_code == 400
    assert path.read_text() == before


# ---- clients and autostart -------------------------------------------------------------------


def test_client_snippets_apply_and_undo(engine: Any, api: httpx.Client, isolated_home: Path) -> None:
    data = api.get("/clients").json()
    by_id = {c["id"]: c for c in data["clients"]}
    assert f'base_url = "{engine.url}/backend-api/codex"' in by_id["codex"]["snippet"]
    assert engine.api_key in by_id["codex"]["snippet"]
    assert f"{engine.url}/v1" in by_id["opencode"]["snippet"]
    assert not by_id["codex"]["applied"]
    codex_file = isolated_home / ".codex" / "config.toml"
    codex_file.parent.mkdir(parents=True)
    codex_file.write_text('model = "gpt-5"\n')
    r = api.post("/clients/codex/apply")
    assert r.status_code == 200 and r.json()["client"]["applied"] is True
    assert "codex-pool" in codex_file.read_text()
    r = api.post("/clients/codex/undo")
    assert r.status_code == 200 and r.json()["client"]["applied"] is False
    assert codex_file.read_text() == 'model = "gpt-5"\n'
    assert api.post("/clients/vim/apply").status_code == 404
    assert api.post("/clients/codex/explode").status_code == 404


def test_broken_client_config_is_reported_and_left_alone(api: httpx.Client, isolated_home: Path) -> None:
    codex_file = isolated_home / ".codex" / "config.toml"
    codex_file.parent.mkdir(parents=True)
    codex_file.write_text("model = [unclosed\n")
    r = api.post("/clients/codex/apply")
    assert r.status_code == 409 and r.json()["error"]
    assert codex_file.read_text() == "model = [unclosed\n"


def test_autostart_on_and_off(api: httpx.Client, isolated_home: Path) -> None:
    assert api.get("/autostart").json()["enabled"] is False
    r = api.put("/autostart", json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True
    entry = isolated_home / ".config" / "autostart" / "codex-pool.desktop"
    assert entry.exists()
    assert api.put("/autostart", json={"enabled": "yes"}).status_code == 400
    assert entry.exists()
    assert api.put("/autostart", json={"enabled": False}).json()["enabled"] is False
    assert not entry.exists()


# ---- sign-in -------------------------------------------------------------------------------------


def wait_for(api: httpx.Client, ticket: str, state: str = "done") -> dict[str, Any]:
    for _ in range(200):
        view: dict[str, Any] = api.get(f"/login/{ticket}").json()["ticket"]
        if view["status"] != "waiting":
            assert view["status"] == state, view
            return view
        time.sleep(0.05)
    raise AssertionError("sign-in did not finish")


def test_device_sign_in_adds_the_account(pool: Pool, api: httpx.Client) -> None:
    pool.auth.user = FakeUser("acc-dev", "user-dev", "dev@example.com", "pro")
    r = api.post("/login/device", json={})
    assert r.status_code == 201
    ticket = r.json()["ticket"]
    assert ticket["kind"] == "device" and ticket["user_code"]
    assert ticket["verification_url"].startswith("http")
    assert api.get(f"/login/{ticket['id']}").json()["ticket"]["status"] == "waiting"
    pool.auth.approve(ticket["user_code"])
    done = wait_for(api, ticket["id"])
    assert done["account"]["email"] == "dev@example.com" and done["account"]["plan"] == "pro"
    assert names(api) == ["dev@example.com"]
    no_secrets(done, pool.engine)


def test_browser_sign_in_adds_the_account(pool: Pool, api: httpx.Client) -> None:
    add_account(pool.engine.store, "first@example.com")
    pool.auth.user = FakeUser("acc-web", "user-web", "web@example.com", "plus")
    ticket = api.post("/login/browser", json={"primary": True}).json()["ticket"]
    assert ticket["kind"] == "browser" and "code_challenge=" in ticket["authorize_url"]
    page = httpx.get(ticket["authorize_url"], follow_redirects=True)  # what the user's browser does
    assert page.status_code == 200 and "signed in" in page.text.lower()
    done = wait_for(api, ticket["id"])
    assert done["account"]["email"] == "web@example.com"
    first = api.get("/accounts").json()["accounts"][0]
    assert first["email"] == "web@example.com" and first["role"] == "primary"


def test_cancelled_and_unknown_sign_ins(api: httpx.Client) -> None:
    ticket = api.post("/login/device").json()["ticket"]
    r = api.delete(f"/login/{ticket['id']}")
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "failed"
    assert "cancel" in r.json()["ticket"]["error"].lower()
    assert api.get("/login/no-such-ticket").status_code == 404
    assert api.delete("/login/no-such-ticket").status_code == 404
    assert api.post("/login/browser", json={"primary": "yes"}).status_code == 400
    assert names(api) == []


def test_relogin_brings_a_needs_login_account_back(pool: Pool, api: httpx.Client) -> None:
    user = FakeUser("acc-back", "user-back", "back@example.com", "plus")
    pool.auth.user = user
    first = api.post("/login/device").json()["ticket"]
    pool.auth.approve(first["user_code"])
    account_id = wait_for(api, first["id"])["account"]["id"]
    pool.engine.store.set_state(account_id, AccountState.NEEDS_LOGIN, "refresh_token_reused")
    assert api.post("/accounts/99/relogin", json={"method": "device"}).status_code == 404
    assert api.post(f"/accounts/{account_id}/relogin", json={"method": "carrier pigeon"}).status_code == 400
    ticket = api.post(f"/accounts/{account_id}/relogin", json={"method": "device"}).json()["ticket"]
    assert ticket["relogin_of"] == account_id
    pool.auth.approve(ticket["user_code"])
    done = wait_for(api, ticket["id"])
    assert done["account"]["id"] == account_id and "note" not in done
    assert api.get("/accounts").json()["accounts"][0]["status"] == "ready"
    assert len(pool.engine.store.accounts()) == 1


# ---- activity from real proxied requests ------------------------------------------------------


def test_activity_after_proxied_requests(pool_home: Path) -> None:
    with running_engine(["a", "b"]) as pool, httpx.Client(
        base_url=pool.engine.url + "/api", headers={"X-Codex-Pool-Token": pool.engine.ui_token}
    ) as api:
        assert pool.post().status_code == 200
        assert pool.post().status_code == 200
        pool.wait_bookkeeping()
        rows = api.get("/activity").json()["decisions"]
        assert len(rows) == 2
        assert all(r["status"] == 200 and r["account"] for r in rows)
        assert {s["name"] for s in rows[0]["scores"]} <= {"a@example.com", "b@example.com"}
        no_secrets(rows, pool.engine)
