"""End to end: a request body reaches upstream as the client sent it; fast mode changes one only by
adding ``service_tier`` to the client's own bytes."""

from __future__ import annotations

import json

from tests.support.proxykit import running_pool

# Spaces, an escaped and a raw non-ASCII character, a number written with a trailing zero: a parser
# that re-serialized the body would change every one of them.
ODD = (b'{ "model" : "gpt-5.5", "stream": true, "store": false,\n  "input": "h\\u00e9llo \xc3\xa9",'
       b' "temperature_hint": 1.50, "prompt_cache_key": "conv-odd" }\n')
JSON = {"content-type": "application/json"}


def test_a_body_the_proxy_does_not_change_reaches_upstream_byte_for_byte() -> None:
    with running_pool(["a"], config={"fast-mode": "disabled"}) as pool, pool.client() as client:
        assert client.post("/backend-api/codex/responses", content=ODD, headers=JSON).status_code == 200
        assert pool.upstream.codex_requests("a")[-1].raw == ODD


def test_fast_mode_appends_service_tier_to_the_clients_own_bytes() -> None:
    with running_pool(["a"], config={"fast-mode": "always"}) as pool, pool.client() as client:
        assert client.post("/backend-api/codex/responses", content=ODD, headers=JSON).status_code == 200
        sent = pool.upstream.codex_requests("a")[-1]
        assert sent.raw == ODD.rstrip()[:-1] + b',"service_tier":"priority"}'
        assert sent.body["service_tier"] == "priority" and sent.body["temperature_hint"] == 1.5


def test_a_null_tier_is_replaced_not_repeated() -> None:
    body = {"model": "gpt-5.5", "service_tier": None, "input": "hi", "stream": True}
    with running_pool(["a"], config={"fast-mode": "always"}) as pool, pool.client() as client:
        assert client.post("/backend-api/codex/responses", json=body).status_code == 200
        sent = pool.upstream.codex_requests("a")[-1]
        assert sent.raw.count(b"service_tier") == 1 and sent.body["service_tier"] == "priority"
        assert list(json.loads(sent.raw))[-1] == "service_tier"
