"""End to end: what crosses the proxy in headers, and an upstream that echoes the account's token.
Nothing about the client's connection or our own credentials goes upstream; nothing that would widen
what a browser may read, or repeat our own server headers, comes back; a token upstream echoes in an
error answer never reaches the client."""

from __future__ import annotations

import logging

import pytest

from tests.support.proxykit import codex_body, replies, running_pool

CLIENT_ONLY = {
    "X-Codex-Pool-Token": "cpui-management-token",
    "Forwarded": "for=192.0.2.60;proto=http;by=203.0.113.43",
    "X-Forwarded-For": "192.0.2.60",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Real-IP": "192.0.2.60",
    "Via": "1.1 some-proxy",
}


def test_headers_about_the_clients_connection_and_our_tokens_stay_here() -> None:
    with running_pool(["a"]) as pool:
        assert pool.post(headers={**CLIENT_ONLY, "x-kept": "1"}).status_code == 200
        seen = pool.upstream.codex_requests("a")[-1].headers
        assert not {name.lower() for name in CLIENT_ONLY} & set(seen), seen.keys()
        assert seen["x-kept"] == "1"


def test_upstream_cors_and_server_headers_do_not_come_back() -> None:
    upstream_only = (("access-control-allow-origin", "*"), ("access-control-allow-credentials", "true"),
                     ("access-control-expose-headers", "x-secret"), ("server", "cloudflare"),
                     ("date", "Thu, 01 Jan 1970 00:00:00 GMT"))
    with running_pool(["a"]) as pool:
        refused = replies.Reply(kind="json", status=400, body={"detail": "no"}, headers=upstream_only)
        pool.upstream.script("a", replies.ok().but(headers=upstream_only), refused)
        for expected in (200, 400):
            response = pool.post()
            assert response.status_code == expected
            assert not [n for n in response.headers if n.lower().startswith("access-control-")]
            assert response.headers.get_list("server") == ["uvicorn"]
            assert len(response.headers.get_list("date")) == 1
            assert "1970" not in response.headers["date"]


def test_a_token_upstream_echoes_in_an_error_answer_is_redacted() -> None:
    with running_pool(["a"]) as pool:
        token = pool.account("a").tokens.access_token
        header, payload, _ = token.split(".")
        body = {"error": {"message": f"Invalid request with Authorization: Bearer {token}",
                          "parts": [f"{header}.{payload}", payload], "type": "invalid_request_error"}}
        pool.upstream.script("a", replies.Reply(kind="json", status=400, body=body,
                                                headers=(("x-echo", f"Bearer {token}"),)))
        response = pool.post()
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "Authorization: Bearer" in error["message"]
        for secret in (token, f"{header}.{payload}", payload):
            assert secret not in response.text
            assert secret not in str(response.headers)


def test_a_non_ascii_header_value_is_answered_normally(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with running_pool(["a"]) as pool, pool.client() as client:
        for raw in ("café".encode(), "café".encode("latin-1"), "日本".encode()):
            response = client.post("/backend-api/codex/responses", json=codex_body(),
                                   headers={"User-Agent": raw, "x-note": raw})
            assert response.status_code == 200, response.text
            seen = pool.upstream.codex_requests("a")[-1].headers
            assert seen["x-note"].encode("latin-1") == raw  # the client's own bytes, unchanged
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_non_ascii_header_value_from_upstream_is_passed_on_as_sent() -> None:
    sent = "日本 café".encode()
    as_str = sent.decode("latin-1")  # the fake writes header values as latin-1
    with running_pool(["a"]) as pool:
        pool.upstream.script("a", replies.ok().but(headers=(("x-upstream-note", as_str),)),
                             replies.Reply(kind="json", status=400, body={"detail": "no"},
                                           headers=(("x-upstream-note", as_str),)))
        for expected in (200, 400):
            response = pool.post()
            assert response.status_code == expected, response.text
            assert response.headers.raw and dict(response.headers.raw)[b"x-upstream-note"] == sent
