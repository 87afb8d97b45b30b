"""End to end: the proxy's routes, /v1 shaping and aggregation, access control and bad input."""

from __future__ import annotations

import json
import socket
import tomllib

import httpx
import pytest

from tests.support.proxykit import codex_body, message_text, replies, running_pool, sse_types, write_config
from tray.engine import Engine
from tray.errors import ServerError
from tray.models import QuotaLow
from tray.paths import resolve_paths


def test_healthz_needs_no_key() -> None:
    with running_pool(["a"]) as pool, httpx.Client(trust_env=False) as client:
        assert client.get(f"{pool.url}/healthz").json() == {"status": "ok"}


def test_local_key_is_required_bearer_or_x_api_key() -> None:
    with running_pool(["a"]) as pool, httpx.Client(base_url=pool.url, trust_env=False) as client:
        missing = client.post("/backend-api/codex/responses", json=codex_body())
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
        wrong = client.post("/v1/responses", json={"model": "m", "input": "hi"},
                            headers={"Authorization": "Bearer cp-wrong"})
        assert wrong.status_code == 401 and "cp-wrong" not in wrong.text
        # The management token is not a proxy key.
        ui = client.get("/v1/models", headers={"Authorization": f"Bearer {pool.engine.ui_token}"})
        assert ui.status_code == 401
        ok = client.get("/v1/models", headers={"x-api-key": pool.engine.api_key})
        assert ok.status_code == 200
        assert pool.upstream.codex_requests() == []


def test_foreign_host_and_origin_are_refused() -> None:
    with running_pool(["a"]) as pool, pool.client() as client:
        rebinding = client.post("/backend-api/codex/responses", json=codex_body(),
                                headers={"Host": f"attacker.example:{pool.engine.server.port}"})  # type: ignore[union-attr]
        assert rebinding.status_code == 403 and rebinding.json()["error"]["code"] == "forbidden_host"
        cross = client.post("/v1/responses", json={"model": "m", "input": "hi"},
                            headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and cross.json()["error"]["code"] == "forbidden_origin"
        assert pool.upstream.codex_requests() == []
        own = client.post("/v1/responses", json={"model": "m", "input": "hi"}, headers={"Origin": pool.url})
        assert own.status_code == 200


def test_bad_input_gets_clear_errors_and_the_proxy_keeps_serving() -> None:
    with running_pool(["a"], config={"max-body-mb": 0.01}) as pool, pool.client() as client:
        bad = client.post("/backend-api/codex/responses", content=b"{not json",
                          headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        array = client.post("/v1/responses", content=b"[1, 2]")
        assert array.status_code == 400 and "JSON object" in array.json()["error"]["message"]
        big = client.post("/backend-api/codex/responses", json=codex_body(pad="x" * 20_000))
        assert big.status_code == 413 and "max-body-mb" in big.json()["error"]["message"]
        chunked = client.post("/backend-api/codex/responses", content=iter([b"{" + b" " * 20_000 + b"}"]))
        assert chunked.status_code == 413
        unknown = client.get("/backend-api/codex/nothing-here")
        assert unknown.status_code == 404 and "error" in unknown.json()
        wrong_method = client.get("/v1/responses")
        assert wrong_method.status_code == 405
        assert pool.upstream.codex_requests() == []
        assert client.post("/backend-api/codex/responses", json=codex_body()).status_code == 200


def test_a_websocket_upgrade_elsewhere_than_the_responses_routes_is_refused() -> None:
    # The responses routes speak the Responses WebSocket (tests/e2e/test_websocket.py); no other
    # route opens a socket, with or without the key.
    with running_pool(["a"]) as pool, pool.client() as client:
        headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                   "openai-beta": "responses_websockets=2026-02-06"}
        for path in ("/backend-api/codex/models", "/v1/models", "/api/status", "/nothing"):
            response = client.get(path, headers=headers)
            assert response.status_code == 403, path
        assert pool.upstream.ws.opened == 0
        assert client.post("/backend-api/codex/responses", json=codex_body()).status_code == 200


def test_upstream_unreachable_gives_502_with_the_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    with running_pool(["a", "b"], config={"upstream-url": f"http://127.0.0.1:{dead}/backend-api"}) as pool:
        response = pool.post()
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["code"] == "upstream_unreachable" and "ConnectError" in error["message"]
        assert pool.engine.api_key not in response.text
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"{pool.url}/healthz").status_code == 200


def test_v1_responses_shaped_like_codex_and_streamed() -> None:
    with running_pool(["a"]) as pool, pool.client() as client:
        body = {"model": "gpt-5.5", "input": "say hi", "stream": True, "max_output_tokens": 50,
                "temperature": 0.3, "top_p": 0.9}
        response = client.post("/v1/responses", json=body)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "response.completed" in sse_types(response)
        sent = pool.upstream.codex_requests("a")[-1]
        assert sent.path == "/backend-api/codex/responses"
        assert sent.body["stream"] is True and sent.body["store"] is False
        assert sent.body["include"] == ["reasoning.encrypted_content"]
        assert isinstance(sent.body["instructions"], str)
        assert not {"max_output_tokens", "temperature", "top_p"} & set(sent.body)
        assert sent.headers["chatgpt-account-id"] == "a"


def test_v1_non_streaming_gets_the_final_response_object() -> None:
    with running_pool(["a"]) as pool, pool.client() as client:
        response = client.post("/v1/responses", json={"model": "gpt-5.5", "input": "say hi"},
                               headers={"accept": "application/json"})
        assert response.status_code == 200
        assert pool.upstream.codex_requests("a")[-1].headers["accept"] == "text/event-stream"
        assert response.headers["content-type"].startswith("application/json")
        final = response.json()
        assert final["object"] == "response" and final["status"] == "completed"
        # The reasoning item comes first, as the backend sends it; then the message.
        assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
        assert message_text(final) == "Hi from a!"
        # A cut-off answer is an error, not a silently short object.
        pool.upstream.script("a", replies.drop(after=4))
        cut = client.post("/v1/responses", json={"model": "gpt-5.5", "input": "say hi"})
        assert cut.status_code == 502 and cut.json()["error"]["code"] == "incomplete_stream"


def test_models_routes() -> None:
    with running_pool(["a"]) as pool, pool.client() as client:
        codex = client.get("/backend-api/codex/models", params={"client_version": "0.169.0"})
        assert codex.status_code == 200 and "models" in codex.json()
        models = [r for r in pool.upstream.requests if r.path == "/backend-api/codex/models"]
        assert models[-1].query == "client_version=0.169.0" and models[-1].account_id == "a"
        openai = client.get("/v1/models").json()
        assert openai["object"] == "list"
        assert [m["id"] for m in openai["data"]] == list(pool.upstream.models)


def test_compact_route_passes_json_through() -> None:
    with running_pool(["a"]) as pool, pool.client() as client:
        response = client.post("/backend-api/codex/responses/compact", json={"model": "gpt-5.5", "input": []})
        assert response.status_code == 200 and "output" in response.json()
        assert pool.upstream.codex_requests("a")[-1].path == "/backend-api/codex/responses/compact"


def test_credentials_only_go_to_the_upstream_origin() -> None:
    with running_pool(["a"]) as pool, pool.client() as client:
        for path in ("/backend-api/wham/usage", "/backend-api/codex/../../elsewhere", "/http://evil/x"):
            client.get(path)
        client.post("/backend-api/codex/responses?redirect=http://evil.example", json=codex_body())
        origin = f"127.0.0.1:{pool.fake_server.port}"
        for request in pool.upstream.requests:
            assert request.headers["host"] == origin
            assert request.path.startswith("/backend-api/")
        # A redirect from upstream is not followed (it would carry the token elsewhere).
        assert not pool.engine.http.follow_redirects  # type: ignore[union-attr]


def test_port_in_use_names_the_port_and_the_key(pool_home: object) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        engine = Engine(resolve_paths(), port=port, import_primary=False)
        try:
            with pytest.raises(ServerError) as err:
                engine.start()
        finally:
            engine.stop()
        message = str(err.value)
        assert str(port) in message and "port" in message and "config.toml" in message


def test_non_loopback_bind_is_refused_unless_allowed(pool_home: object) -> None:
    engine = Engine(resolve_paths(), host="0.0.0.0", port=0, import_primary=False)
    try:
        with pytest.raises(ServerError, match="allow-remote"):
            engine.start()
    finally:
        engine.stop()


def test_config_changes_apply_without_restart() -> None:
    with running_pool(["a"], config={"fast-mode": "disabled"}) as pool:
        pool.post()
        assert "service_tier" not in pool.upstream.codex_requests("a")[-1].body
        path = pool.engine.paths.config_file
        values = tomllib.loads(path.read_text())
        write_config(path.parent, {**values, "fast-mode": "always"})
        pool.engine.reload_config()
        pool.post()
        assert pool.upstream.codex_requests("a")[-1].body["service_tier"] == "priority"
        assert json.loads(pool.engine.paths.instance_file.read_text())["url"] == pool.url


def test_a_reload_reaches_the_body_limit_and_the_quota_low_threshold() -> None:
    """The settings a running proxy applies live arrive where they are used: ``max-body-mb`` at the
    proxy routes, ``quota-low-percent`` at the quota service (20 % left: quiet at 10, low at 30)."""
    with running_pool(["a"], usage={"a": {"primary_used": 80.0}}) as pool:
        big = codex_body(instructions="x" * 4000)
        assert pool.post(body=big).status_code == 200
        pool.wait_bookkeeping()
        assert not [e for e in pool.events if isinstance(e, QuotaLow)]
        path = pool.engine.paths.config_file
        values = tomllib.loads(path.read_text())
        write_config(path.parent, {**values, "max-body-mb": 0.002, "quota-low-percent": 30})
        pool.engine.reload_config()
        refused = pool.post(body=big)
        assert refused.status_code == 413 and "max-body-mb" in refused.text
        assert pool.post().status_code == 200
        pool.wait_bookkeeping()
        low = [e for e in pool.events if isinstance(e, QuotaLow)]
        assert [(e.name, round(e.percent_left)) for e in low] == [("a@example.com", 20)]
