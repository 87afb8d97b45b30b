from __future__ import annotations

from tray.proxy.shaping import client_headers, openai_model_list, redact, shape_v1_body, upstream_headers


def test_upstream_headers_forward_client_identity_and_replace_credentials() -> None:
    client = [
        ("Authorization", "Bearer cp-local"),
        ("x-api-key", "cp-local"),
        ("chatgpt-account-id", "client-acc"),
        ("version", "0.169.0"),
        ("originator", "codex_exec"),
        ("User-Agent", "codex_exec/0.169.0"),
        ("session-id", "s1"),
        ("x-codex-window-id", "w:0"),
        ("x-codex-turn-state", "ts-from-client"),
        ("Host", "127.0.0.1:1"),
        ("Connection", "keep-alive"),
        ("content-length", "12"),
    ]
    out = dict(upstream_headers(client, access_token="tok-a", chatgpt_account_id="acc-a"))
    assert out["authorization"] == "Bearer tok-a"
    assert out["chatgpt-account-id"] == "acc-a"
    assert out["version"] == "0.169.0" and out["originator"] == "codex_exec"
    assert out["user-agent"] == "codex_exec/0.169.0" and out["session-id"] == "s1"
    assert out["x-codex-window-id"] == "w:0"
    for dropped in ("x-api-key", "host", "connection", "content-length", "x-codex-turn-state"):
        assert dropped not in out
    with_state = dict(upstream_headers(client, access_token="t", chatgpt_account_id=None, turn_state="ts"))
    assert with_state["x-codex-turn-state"] == "ts" and "chatgpt-account-id" not in with_state


def test_headers_named_in_connection_are_hop_by_hop() -> None:
    client = [("Connection", "keep-alive, X-Hop"), ("connection", " Upgrade ,x-two"), ("x-hop", "1"),
              ("X-Two", "2"), ("upgrade", "h2c"), ("x-kept", "3")]
    out = dict(upstream_headers(client, access_token="t", chatgpt_account_id=None))
    assert "x-hop" not in out and "x-two" not in out and "upgrade" not in out
    assert out["x-kept"] == "3"


def test_defaults_only_fill_missing_headers() -> None:
    out = dict(upstream_headers([("originator", "mine")], access_token="t", chatgpt_account_id=None,
                                defaults={"originator": "codex_cli_rs", "x-extra": "1"}))
    assert out["originator"] == "mine" and out["x-extra"] == "1"


def test_response_headers_lose_framing_and_cookies() -> None:
    out = dict(client_headers([("Content-Type", "text/event-stream"), ("Set-Cookie", "a=b"),
                               ("Content-Length", "5"), ("x-codex-primary-used-percent", "3")]))
    assert out == {"content-type": "text/event-stream", "x-codex-primary-used-percent": "3"}


def test_response_headers_lose_cors_grants_and_our_servers_headers_and_the_token() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLWEiLCJleHAiOjF9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
    out = client_headers([("Access-Control-Allow-Origin", "*"), ("access-control-allow-headers", "x"),
                          ("Server", "cloudflare"), ("Date", "x"), ("x-request-id", "r1"),
                          ("WWW-Authenticate", f'Bearer error="invalid_token", token="{token}"')], token)
    assert [n for n, _ in out] == ["x-request-id", "www-authenticate"]
    assert token.split(".")[1] not in out[1][1] and "[redacted]" in out[1][1]


def test_redact_hides_the_token_and_its_long_parts() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLWEiLCJleHAiOjF9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
    head, payload, signature = token.split(".")
    body = f"{token} | {head}.{payload} | {payload} | {signature} | {head}".encode()
    assert redact(body, token) == f"[redacted] | [redacted] | [redacted] | [redacted] | {head}".encode()
    assert redact(b"a tok-a b", "tok-a") == b"a [redacted] b"
    assert redact(b"x.ab.cd", "x.ab.cd") == b"[redacted]" and redact(b"ab", "x.ab.cd") == b"ab"


def test_v1_body_is_shaped_like_codex_cli() -> None:
    body = {"model": "m", "input": "say hi", "max_output_tokens": 5, "temperature": 0.2, "top_p": 1,
            "include": ["file_search_call.results"]}
    shaped, dropped, wants_stream = shape_v1_body(body)
    assert shaped["stream"] is True and shaped["store"] is False
    assert shaped["include"] == ["file_search_call.results", "reasoning.encrypted_content"]
    assert isinstance(shaped["instructions"], str)
    assert shaped["input"][0]["content"][0] == {"type": "input_text", "text": "say hi"}
    assert sorted(dropped) == ["max_output_tokens", "temperature", "top_p"]
    assert not wants_stream
    assert "max_output_tokens" in body  # caller's object untouched
    body2 = {"model": "m", "input": [], "stream": True, "instructions": "be brief"}
    kept, _, streaming = shape_v1_body(body2)
    assert streaming and kept["instructions"] == "be brief"


def test_model_list_in_openai_shape() -> None:
    out = openai_model_list({"models": [{"slug": "gpt-5.5"}, {"slug": "gpt-5.4-mini"}, {"slug": "gpt-5.5"}]})
    assert out["object"] == "list"
    assert [m["id"] for m in out["data"]] == ["gpt-5.5", "gpt-5.4-mini"]
    assert out["data"][0]["object"] == "model"
    assert openai_model_list({"data": [{"id": "x"}]})["data"][0]["id"] == "x"
    assert openai_model_list("nonsense") == {"object": "list", "data": []}
