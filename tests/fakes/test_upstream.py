"""The fake ChatGPT backend behaves as its docstring promises (a test of the test tool), over a real
loopback socket with plain httpx."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.fakes import replies
from tests.fakes.jwt import account_claims, make_jwt
from tests.fakes.runner import serving
from tests.fakes.upstream import (
    FakeUpstream,
    WireShape,
    make_chatgpt,
    make_upstream,
    parse_sse,
    usage_payload,
)
from tests.fakes.upstream_shape import KEEPALIVE

TOKEN_A = "tok-a-secret"
TOKEN_B = "tok-b-secret"
ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture
def fake() -> FakeUpstream:
    fake = make_upstream()
    fake.add_account("acc-a", TOKEN_A, usage_payload(primary_used=25, secondary_used=10, plan_type="plus"))
    fake.add_account("acc-b", TOKEN_B, plan_type="pro")
    return fake


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with serving(fake.app) as server, httpx.Client(base_url=server.url + "/backend-api") as http:
        yield http


def post(
    client: httpx.Client, token: str, body: dict[str, Any] | None = None, **headers: str
) -> httpx.Response:
    hdrs = {"authorization": f"Bearer {token}", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return client.post("/codex/responses", json=body or {"model": "gpt-5.5", "stream": True}, headers=hdrs)


def names(response: httpx.Response) -> list[str]:
    return [name for name, _ in parse_sse(response.content)]


def wait_until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def test_answer_is_an_sse_stream_in_the_order_codex_accepts(client: httpx.Client) -> None:
    response = post(client, TOKEN_A, chatgpt_account_id="acc-a")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.content)
    assert [name for name, _ in events] == ORDER
    text = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    assert text == "Hi from acc-a!"
    completed = events[-1][1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"][0]["content"][0]["text"] == "Hi from acc-a!"
    assert completed["usage"]["total_tokens"] > 0
    assert [data["sequence_number"] for _, data in events] == list(range(len(ORDER)))


def test_every_answer_carries_the_accounts_rate_limit_headers(client: httpx.Client) -> None:
    headers = post(client, TOKEN_A).headers
    assert headers["x-fake-account"] == "acc-a"
    assert headers["x-codex-primary-used-percent"] == "25"
    assert headers["x-codex-primary-window-minutes"] == "300"
    assert headers["x-codex-secondary-used-percent"] == "10"
    assert headers["x-codex-secondary-window-minutes"] == "10080"
    assert int(headers["x-codex-primary-reset-at"]) > time.time() + 17_000
    assert 17_000 < int(headers["x-codex-primary-reset-after-seconds"]) <= 18_000
    assert "x-codex-secondary-reset-after-seconds" in headers


def test_bad_tokens_get_401_and_a_foreign_account_header_gets_403(client: httpx.Client) -> None:
    unknown = post(client, "nope")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "token_invalidated"
    assert client.post("/codex/responses", json={}).status_code == 401
    assert post(client, TOKEN_A, chatgpt_account_id="acc-b").status_code == 403


def test_an_expired_jwt_gets_token_expired(fake: FakeUpstream, client: httpx.Client) -> None:
    expired = make_jwt(account_claims("acc-a", expires_in=-60))
    fake.add_token("acc-a", expired)
    response = post(client, expired)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"
    fresh = make_jwt(account_claims("acc-a", expires_in=3600))
    fake.add_token("acc-a", fresh)
    assert post(client, fresh).status_code == 200


def test_usage_limit_429_has_real_body_and_headers_and_exhausts_the_account(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    fake.script("acc-a", replies.usage_limit(resets_in=600, retry_after=600))
    response = post(client, TOKEN_A)
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == "usage_limit_reached"
    assert error["plan_type"] == "plus"
    assert error["resets_in_seconds"] == 600
    assert abs(error["resets_at"] - (time.time() + 600)) < 5
    assert response.headers["retry-after"] == "600"
    assert response.headers["x-codex-primary-used-percent"] == "100"
    assert int(response.headers["x-codex-primary-reset-after-seconds"]) <= 600

    usage = client.get("/wham/usage", headers={"authorization": f"Bearer {TOKEN_A}"}).json()
    assert usage["rate_limit"]["limit_reached"] is True
    assert usage["rate_limit"]["primary_window"]["used_percent"] == 100
    again = post(client, TOKEN_A)  # still exhausted: upstream keeps saying 429 until the reset
    assert again.status_code == 429
    assert again.json()["error"]["resets_in_seconds"] <= 600

    fake.set_usage("acc-a", primary_used=0)
    assert post(client, TOKEN_A).status_code == 200


def test_exhausted_window_recovers_by_itself_after_its_reset(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    now = [time.time()]
    fake.clock = lambda: now[0]
    fake.set_usage("acc-b", primary_used=100, primary_reset_after_s=60, limit_reached=True, allowed=False)
    assert post(client, TOKEN_B).status_code == 429
    now[0] += 61
    assert post(client, TOKEN_B).status_code == 200
    window = fake.usage_of("acc-b")["rate_limit"]["primary_window"]
    assert window["used_percent"] == 0
    assert window["reset_after_seconds"] == window["limit_window_seconds"]


def test_other_error_replies(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script(
        "acc-b",
        replies.usage_not_included(),
        replies.unauthorized(),
        replies.server_error(503),
        replies.html_403(),
        replies.rate_limited(retry_after=7),
    )
    not_included = post(client, TOKEN_B)
    assert not_included.status_code == 429
    assert not_included.json()["error"]["type"] == "usage_not_included"
    assert not_included.json()["error"]["plan_type"] == "pro"
    unauthorized = post(client, TOKEN_B)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["code"] == "token_expired"
    assert post(client, TOKEN_B).status_code == 503
    html = post(client, TOKEN_B)
    assert html.status_code == 403
    assert html.headers["content-type"].startswith("text/html")
    assert "Just a moment" in html.text
    plain = post(client, TOKEN_B)
    assert plain.status_code == 429
    assert plain.headers["retry-after"] == "7"
    assert post(client, TOKEN_B).status_code == 200  # script used up: back to the default
    assert fake.outcomes["429"] == 2
    assert fake.outcomes["html_403"] == 1


def test_mid_stream_drop_closes_the_connection_without_completed(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    fake.script("acc-a", replies.drop(after=5))
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream(
            "POST", "/codex/responses", json={}, headers={"authorization": f"Bearer {TOKEN_A}"}
        ) as r,
    ):
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            received += chunk
    seen = [name for name, _ in parse_sse(received)]
    assert seen == ORDER[:5]
    wait_until(lambda: fake.open_streams == 0)
    assert fake.completed_streams == 0


def test_overloaded_error_comes_after_response_created(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("acc-a", replies.overloaded(), replies.overloaded(style="error"))
    failed = parse_sse(post(client, TOKEN_A).content)
    assert [name for name, _ in failed] == ["response.created", "response.failed"]
    assert failed[1][1]["response"]["error"]["code"] == "server_is_overloaded"
    bare = parse_sse(post(client, TOKEN_A).content)
    assert [name for name, _ in bare] == ["response.created", "error"]
    assert bare[1][1]["code"] == "server_is_overloaded"


def test_rate_limits_event_turn_state_size_and_tier(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script(
        "acc-a", replies.ok("hello", deltas=40, delta_size=50, rate_limits_event=True, turn_state="ts-1")
    )
    response = post(client, TOKEN_A, {"model": "gpt-5.4", "service_tier": "priority"})
    assert response.headers["x-codex-turn-state"] == "ts-1"
    events = parse_sse(response.content)
    name, first = events[0]
    assert name == "codex.rate_limits"
    assert first["rate_limits"]["primary"] == {
        "used_percent": 25,
        "window_minutes": 300,
        "reset_at": first["rate_limits"]["primary"]["reset_at"],
    }
    assert first["plan_type"] == "plus"
    deltas = [data["delta"] for n, data in events if n == "response.output_text.delta"]
    assert len(deltas) == 40
    assert all(len(d) == 50 for d in deltas)
    assert deltas[0].startswith("hello")
    created = events[1][1]["response"]
    assert created["model"] == "gpt-5.4"
    assert created["service_tier"] == "priority"


def test_compact_answers_json(client: httpx.Client) -> None:
    response = client.post(
        "/codex/responses/compact", json={"model": "gpt-5.5"}, headers={"authorization": f"Bearer {TOKEN_B}"}
    )
    assert response.status_code == 200
    [item] = response.json()["output"]
    assert item["type"] == "compaction" and item["encrypted_content"].startswith("enc:acc-b:")


def test_encrypted_content_is_refused_unless_this_account_made_it(client: httpx.Client) -> None:
    auth_b = {"authorization": f"Bearer {TOKEN_B}"}
    made = client.post("/codex/responses/compact", json={"model": "gpt-5.5"}, headers=auth_b).json()["output"]
    body = {"model": "gpt-5.5", "input": made}
    assert client.post("/codex/responses", json=body, headers=auth_b).status_code == 200
    refused = client.post("/codex/responses", json=body, headers={"authorization": f"Bearer {TOKEN_A}"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_encrypted_content"
    unknown = {"model": "gpt-5.5", "input": [{"type": "reasoning", "encrypted_content": "gAAAA-made-up"}]}
    assert client.post("/codex/responses", json=unknown, headers=auth_b).status_code == 400


def test_usage_endpoint(fake: FakeUpstream, client: httpx.Client) -> None:
    auth = {"authorization": f"Bearer {TOKEN_A}", "chatgpt-account-id": "acc-a"}
    payload = client.get("/wham/usage", headers=auth).json()
    assert payload["plan_type"] == "plus"
    assert payload["account_id"] == "acc-a"
    limit = payload["rate_limit"]
    assert limit["allowed"] is True
    assert limit["limit_reached"] is False
    assert limit["primary_window"]["used_percent"] == 25
    assert limit["primary_window"]["limit_window_seconds"] == 18_000
    assert limit["secondary_window"]["limit_window_seconds"] == 604_800
    # a used window counts down from the value it was set to
    assert limit["primary_window"]["reset_after_seconds"] in (17_999, 18_000)
    assert "credits" in payload
    assert client.get("/wham/usage", headers={"authorization": "Bearer bad"}).status_code == 401
    fake.script_usage("acc-a", replies.server_error(500))
    assert client.get("/wham/usage", headers=auth).status_code == 500
    assert fake.usage_calls["acc-a"] == 2  # the bad token is not an account's call
    dormant = client.get("/wham/usage", headers={"authorization": f"Bearer {TOKEN_B}"}).json()
    window = dormant["rate_limit"]["primary_window"]
    assert window["used_percent"] == 0
    assert window["reset_after_seconds"] == window["limit_window_seconds"]  # dormant: exact equality


def test_models_endpoint(client: httpx.Client) -> None:
    models = client.get(
        "/codex/models?client_version=0.169.0", headers={"authorization": f"Bearer {TOKEN_A}"}
    )
    assert [m["slug"] for m in models.json()["models"]] == ["gpt-5.5", "gpt-5.4", "gpt-5.3-codex"]


def test_requests_are_recorded_and_printed_without_secrets(fake: FakeUpstream, client: httpx.Client) -> None:
    post(client, TOKEN_A, {"model": "gpt-5.5", "input": "hi"}, session_id="s-1")
    rec = fake.codex_requests("acc-a")[0]
    assert rec.headers["authorization"] == f"Bearer {TOKEN_A}"
    assert rec.token == TOKEN_A
    assert rec.headers["session-id"] == "s-1"
    assert rec.body == {"model": "gpt-5.5", "input": "hi"}
    assert TOKEN_A not in repr(rec)
    assert TOKEN_A not in fake.describe()
    assert fake.served["acc-a"] == 1


def test_faults_are_random_but_reproducible() -> None:
    def run(seed: int) -> list[int]:
        fake = make_upstream()
        fake.add_account("acc-a", TOKEN_A)
        fake.faults(rate_429=0.2, rate_5xx=0.2, rate_html_403=0.1, rate_overloaded=0.1, seed=seed)
        with serving(fake.app) as server, httpx.Client(base_url=server.url + "/backend-api") as http:
            return [post(http, TOKEN_A).status_code for _ in range(40)]

    first = run(7)
    assert first == run(7)
    assert {200, 429, 403} <= set(first)
    assert {500, 502} & set(first)
    assert first != run(8)


def test_fault_plan_rejects_rates_over_one() -> None:
    with pytest.raises(ValueError, match="add up"):
        make_upstream().faults(rate_429=0.6, rate_drop=0.6)


def test_client_disconnect_is_noticed(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("acc-a", replies.ok(deltas=200, event_delay=0.02))
    with client.stream(
        "POST", "/codex/responses", json={}, headers={"authorization": f"Bearer {TOKEN_A}"}
    ) as r:
        next(r.iter_bytes())
    wait_until(lambda: fake.disconnects == 1 and fake.open_streams == 0)
    assert fake.completed_streams == 0


def test_make_chatgpt_serves_backend_and_auth_on_one_port() -> None:
    auth = Starlette(
        routes=[Route("/oauth/token", lambda r: PlainTextResponse("auth fake"), methods=["POST"])]
    )
    chatgpt = make_chatgpt(auth=auth)
    chatgpt.upstream.add_account("acc-a", TOKEN_A)
    with serving(chatgpt.app) as server, httpx.Client(base_url=server.url) as http:
        assert http.post("/oauth/token").text == "auth fake"
        answer = http.post(
            "/backend-api/codex/responses", json={}, headers={"authorization": f"Bearer {TOKEN_A}"}
        )
        assert "Hi from acc-a!" in answer.text


def test_tokens_the_auth_fake_issues_are_valid_upstream() -> None:
    from tests.fakes.auth_server import FakeAuth, FakeUser

    chatgpt = make_chatgpt()
    assert isinstance(chatgpt.auth, FakeAuth)
    with serving(chatgpt.app) as server, httpx.Client(base_url=server.url) as http:
        first = chatgpt.auth.issue(FakeUser(account_id="acc-z", subject="u-z"))
        refreshed = http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
                "client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
            },
        ).json()
        for token in (first["access_token"], refreshed["access_token"]):
            answer = http.post(
                "/backend-api/codex/responses", json={}, headers={"authorization": f"Bearer {token}"}
            )
            assert "Hi from acc-z!" in answer.text


def test_the_default_wire_coalesces_splits_comments_and_gzips_reproducibly() -> None:
    """The default shape is harder than one event per read: over 30 answers some chunks carry several
    events, some events are cut across chunks, keep-alive comments appear and some answers are gzip;
    the same seed draws the same shapes."""

    def run() -> tuple[list[list[bytes]], list[str]]:
        fake = make_upstream()
        fake.add_account("acc-a", TOKEN_A)
        frames = [f"event: e\ndata: {{\"n\":{n}}}\n\n".encode() for n in range(11)]
        shapes = [fake.chunks(frames) for _ in range(30)]
        with serving(fake.app) as server, httpx.Client(base_url=server.url + "/backend-api") as http:
            encodings = [post(http, TOKEN_A).headers.get("content-encoding", "") for _ in range(30)]
        for chunks in shapes:
            assert b"".join(chunks).replace(KEEPALIVE, b"") == b"".join(frames)
        return shapes, encodings

    shapes, encodings = run()
    assert (shapes, encodings) == run()
    assert any(sum(c.count(b"\n\n") for c in chunks if c != KEEPALIVE) > len(chunks) for chunks in shapes)
    assert any(not c.endswith(b"\n\n") for chunks in shapes for c in chunks)
    assert any(KEEPALIVE in c for chunks in shapes for c in chunks)
    assert 0 < encodings.count("gzip") < 30


def test_wire_shape_per_test_gzip_and_keepalives_decode_to_the_same_answer(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    fake.wire(WireShape(coalesce=1.0, split=0.0, keepalive=1.0, gzip=1.0))
    zipped = post(client, TOKEN_A)
    assert zipped.headers["content-encoding"] == "gzip" and "content-length" not in zipped.headers
    assert names(zipped) == ORDER
    assert zipped.content.count(KEEPALIVE) == len(ORDER)
    # Only a request that accepts gzip gets it.
    plain = post(client, TOKEN_A, accept_encoding="identity")
    assert "content-encoding" not in plain.headers and names(plain) == ORDER
    # JSON answers are compressed too.
    fake.script("acc-a", replies.usage_limit(resets_in=60))
    limited = post(client, TOKEN_A)
    assert limited.headers["content-encoding"] == "gzip" and limited.status_code == 429
    assert limited.json()["error"]["type"] == "usage_limit_reached"
    fake.wire(WireShape.exact())
    exact = post(client, TOKEN_B)
    assert "content-encoding" not in exact.headers and KEEPALIVE not in exact.content


def test_a_gzip_answer_dropped_mid_stream_still_breaks_the_connection(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    fake.wire(gzip=1.0)
    fake.script("acc-a", replies.drop(after=5))
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream(
            "POST", "/codex/responses", json={}, headers={"authorization": f"Bearer {TOKEN_A}"}
        ) as r,
    ):
        assert r.headers["content-encoding"] == "gzip"
        for chunk in r.iter_bytes():
            received += chunk
    assert [name for name, _ in parse_sse(received)] == ORDER[:5]
