"""End to end: codex-pool behind a corporate forward proxy.

The fake backend answers as ``chatgpt.test``, a name only the forward proxy resolves (to loopback), so
every request, usage fetch and token refresh that succeeds went through the proxy; the proxy counts
its tunnels, forwarded requests and SOCKS connections. HTTPS goes through ``CONNECT`` to a fake
backend with a certificate from a private CA the engine is told to trust.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from websockets.sync.client import connect

from tests.fakes.auth_server import FakeAuth
from tests.fakes.forward_proxy import ForwardProxy, forward_proxy
from tests.fakes.runner import serving
from tests.fakes.upstream import FakeChatGPT, make_chatgpt, replies
from tests.support.proxykit import DEFAULT_CONFIG, add_account, message_text, write_config
from tray.engine import Engine
from tray.paths import resolve_paths

NAME = "chatgpt.test"
LOGIN = ("corp-user", "pr0xy-s3cret")


@dataclass
class Behind:
    engine: Engine
    chatgpt: FakeChatGPT
    proxy: ForwardProxy

    def ask(self, text: str = "say hi") -> httpx.Response:
        with httpx.Client(base_url=self.engine.url, timeout=30, trust_env=False,
                          headers={"Authorization": f"Bearer {self.engine.api_key}"}) as client:
            return client.post("/v1/responses", json={"model": "gpt-5.5", "input": text})


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ssl.SSLContext]:
    """A certificate for chatgpt.test (and 127.0.0.1) from a private CA, and a context trusting it."""
    ca = trustme.CA()
    pem = tmp_path_factory.mktemp("tls") / "server.pem"
    ca.issue_cert(NAME, "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    return str(pem), trust


@contextmanager
def behind_proxy(env: dict[str, str], *, https: bool, tls: tuple[str, ssl.SSLContext] | None = None,
                 config: dict[str, str] | None = None, host: str = NAME,
                 credentials: tuple[str, str] | None = LOGIN, accounts: tuple[str, ...] = ("a",),
                 primed: bool = False) -> Iterator[Behind]:
    """A running engine whose upstream is the fake at ``host`` (reached through the forward proxy
    for ``chatgpt.test``); ``env`` holds the proxy variables, with ``{proxy}`` standing for the
    proxy's URL with its credentials (``{socks}`` for the socks5h:// one, ``{port}`` for its port).
    ``primed``: the accounts' usage is cached already, so no usage fetch runs at start."""
    chatgpt = make_chatgpt()
    auth = chatgpt.auth
    assert isinstance(auth, FakeAuth)
    with serving(chatgpt.app, tls_pem=tls[0] if https and tls else None) as server, \
            forward_proxy({NAME: "127.0.0.1"}, credentials) as proxy:
        origin = f"{'https' if https else 'http'}://{host}:{server.port}"
        fill = {"proxy": proxy.url_with("http"), "socks": proxy.url_with("socks5h"), "port": proxy.port}
        home = Path(os.environ["CODEX_POOL_HOME"])
        write_config(home, {**DEFAULT_CONFIG, "upstream-url": f"{origin}/backend-api", "auth-url": origin,
                            **{k: v.format(**fill) for k, v in (config or {}).items()}})
        environ = {**os.environ, **{k: v.format(**fill) for k, v in env.items()}}
        engine = Engine(resolve_paths(), port=0, import_primary=False, environ=environ,
                        upstream_tls=tls[1] if tls else None,
                        upstream_timeout=httpx.Timeout(10.0))
        for fake_id in accounts:
            account = add_account(engine.store, auth, chatgpt.upstream, fake_id)
            if primed:
                usage = json.dumps(chatgpt.upstream.usage_of(fake_id))
                engine.store.put_usage(account.id, usage, time.time())
        engine.start()
        try:
            yield Behind(engine, chatgpt, proxy)
        finally:
            engine.stop()


def _wait(check: object, what: str) -> None:
    deadline = time.monotonic() + 15
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_https_upstream_goes_through_connect_with_credentials_for_every_client(
    tls: tuple[str, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tray")
    with behind_proxy({"HTTPS_PROXY": "{proxy}", "NO_PROXY": "intranet.example"}, https=True,
                      tls=tls) as behind:
        # A 401 first: the answer needs a token refresh (the token client) before the retry.
        behind.chatgpt.upstream.script("a", replies.unauthorized())
        answer = behind.ask()
        assert answer.status_code == 200, answer.text
        assert message_text(answer.json()) == "Hi from a!"
        auth = behind.chatgpt.auth
        assert isinstance(auth, FakeAuth)
        assert auth.refresh_grants == 1
        _wait(lambda: behind.chatgpt.upstream.usage_calls["a"] >= 1, "a usage fetch")
        port = behind.engine.config.upstream_url.split(":")[2].split("/")[0]
        assert behind.proxy.tunnels[f"{NAME}:{port}"] >= 1
        assert not behind.proxy.forwarded and not behind.proxy.socks and behind.proxy.refused == 0
        assert set(behind.proxy.auth_seen) == {"Basic Y29ycC11c2VyOnByMHh5LXMzY3JldA=="}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "go through a proxy (https via http://***@127.0.0.1:" in logged
    assert LOGIN[1] not in logged


def test_http_upstream_is_forwarded_by_http_proxy() -> None:
    with behind_proxy({"HTTP_PROXY": "{proxy}"}, https=False) as behind:
        assert behind.ask().status_code == 200
        assert sum(behind.proxy.forwarded.values()) >= 1 and not behind.proxy.tunnels


def test_all_proxy_with_a_socks_url_carries_the_upstream() -> None:
    with behind_proxy({"ALL_PROXY": "{socks}"}, https=False) as behind:
        answer = behind.ask()
        assert answer.status_code == 200, answer.text
        assert sum(behind.proxy.socks.values()) >= 1
        assert behind.proxy.auth_seen and set(behind.proxy.auth_seen) == {":".join(LOGIN)}


def test_the_config_key_wins_over_the_environment() -> None:
    env = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # nothing listens
    with behind_proxy(env, https=False, config={"upstream-proxy": "{proxy}"}) as behind:
        assert behind.ask().status_code == 200
        assert sum(behind.proxy.forwarded.values()) >= 1


def test_loopback_upstream_never_goes_through_the_proxy() -> None:
    env = {"HTTP_PROXY": "{proxy}", "HTTPS_PROXY": "{proxy}", "ALL_PROXY": "{socks}"}
    with behind_proxy(env, https=False, host="127.0.0.1", config={"upstream-proxy": "{proxy}"}) as behind:
        assert behind.ask().status_code == 200
        assert behind.proxy.total == 0 and not behind.proxy.auth_seen


@pytest.mark.parametrize("https", [False, True])
def test_refused_proxy_credentials_give_a_502_that_names_no_password(
    https: bool, tls: tuple[str, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "http://corp-user:pr0xy-s3cret@127.0.0.1:{port}"  # the proxy wants another password
    env = {"HTTPS_PROXY" if https else "HTTP_PROXY": wrong}
    with behind_proxy(env, https=https, tls=tls, credentials=("corp-user", "other"), accounts=("a", "b"),
                      primed=True) as behind:
        answer = behind.ask()
        assert answer.status_code == 502, answer.text
        message = answer.json()["error"]["message"]
        assert "the forward proxy refused the connection" in message and "upstream-proxy" in message
        assert "pr0xy-s3cret" not in answer.text
        assert behind.proxy.refused == 1  # one try: every account would meet the same proxy
        assert behind.engine.store.cooldowns(time.time()) == {}  # and none is blamed for it
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "pr0xy-s3cret" not in logged


def test_the_responses_websocket_goes_through_the_proxy_too() -> None:
    with behind_proxy({"HTTP_PROXY": "{proxy}"}, https=False, primed=True) as behind:
        url = behind.engine.url.replace("http://", "ws://") + "/backend-api/codex/responses"
        auth = {"authorization": f"Bearer {behind.engine.api_key}"}
        with connect(url, additional_headers=auth, open_timeout=10, proxy=None) as conn:
            conn.send(json.dumps({"type": "response.create", "model": "gpt-5.5", "input": []}))
            while (event := json.loads(conn.recv(timeout=30)))["type"] != "response.completed":
                pass
        [sent] = behind.chatgpt.upstream.codex_requests()
        assert sent.over_websocket and sent.account_id == "a"
        assert [n for host, n in behind.proxy.tunnels.items() if host.startswith(f"{NAME}:")] == [1]
        assert event["response"]["status"] == "completed"
