"""End to end: compressed request bodies (``Content-Encoding`` zstd, gzip, deflate) through the proxy.

The fake backend decodes a compressed body as chatgpt.com does for Codex's zstd bodies, and records
the bytes it got on the wire, so each test sees both what upstream received and what it understood.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib

import pytest
import zstandard

from tests.support.proxykit import CODEX_HEADERS, codex_body, message_text, running_pool

PACK = {
    "zstd": lambda data: zstandard.ZstdCompressor(level=3).compress(data),
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@pytest.mark.parametrize("coding", ["zstd", "gzip", "deflate"])
def test_codex_route_forwards_the_clients_compressed_bytes_unchanged(coding: str) -> None:
    plain = _json(codex_body(prompt_cache_key="thread-7"))
    packed = PACK[coding](plain)
    with running_pool(["a"]) as pool, pool.client() as client:
        answer = client.post("/backend-api/codex/responses", content=packed,
                             headers={**CODEX_HEADERS, "content-encoding": coding,
                                      "content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert "Hi from a!" in answer.text
        [seen] = pool.upstream.codex_requests()
        assert seen.raw == packed  # byte for byte, still compressed
        assert seen.headers["content-encoding"] == coding
        assert seen.body == json.loads(plain)  # and the backend understood it


@pytest.mark.parametrize("coding", ["zstd", "gzip"])
def test_v1_responses_reads_a_compressed_body_and_sends_plain_json(coding: str) -> None:
    plain = _json({"model": "gpt-5.5", "input": "say hi", "temperature": 0.2})
    with running_pool(["a"]) as pool, pool.client() as client:
        answer = client.post("/v1/responses", content=PACK[coding](plain),
                             headers={"content-encoding": coding, "content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert message_text(answer.json()) == "Hi from a!"
        [seen] = pool.upstream.codex_requests()
        assert "content-encoding" not in seen.headers
        assert json.loads(seen.raw) == seen.body
        assert seen.body["input"][0]["content"][0]["text"] == "say hi"
        assert "temperature" not in seen.body


def test_a_body_changed_for_fast_mode_goes_plain_with_no_stale_header() -> None:
    plain = _json(codex_body())
    with running_pool(["a"], config={"fast-mode": "always"}) as pool, pool.client() as client:
        answer = client.post("/backend-api/codex/responses", content=PACK["zstd"](plain),
                             headers={**CODEX_HEADERS, "content-encoding": "zstd"})
        assert answer.status_code == 200, answer.text
        [seen] = pool.upstream.codex_requests()
        assert "content-encoding" not in seen.headers
        assert json.loads(seen.raw)["service_tier"] == "priority"


def test_two_codings_in_one_header_are_undone_in_reverse() -> None:
    plain = _json(codex_body())
    packed = PACK["zstd"](gzip.compress(plain))  # gzip applied first, then zstd
    with running_pool(["a"]) as pool, pool.client() as client:
        answer = client.post("/backend-api/codex/responses", content=packed,
                             headers={**CODEX_HEADERS, "content-encoding": "gzip, zstd"})
        assert answer.status_code == 200, answer.text
        assert pool.upstream.codex_requests()[0].body == json.loads(plain)


def test_unknown_or_damaged_encodings_get_clear_errors_and_reach_nobody() -> None:
    plain = _json(codex_body())
    with running_pool(["a"]) as pool, pool.client() as client:
        brotli = client.post("/backend-api/codex/responses", content=b"\x0b\x02\x80{}\x03",
                             headers={**CODEX_HEADERS, "content-encoding": "br"})
        assert brotli.status_code == 415
        assert "'br' is not supported" in brotli.json()["error"]["message"]
        damaged = client.post("/v1/responses", content=gzip.compress(plain)[:-30],
                              headers={"content-encoding": "gzip"})
        assert damaged.status_code == 400 and "gzip" in damaged.json()["error"]["message"]
        not_zstd = client.post("/backend-api/codex/responses", content=plain,
                               headers={**CODEX_HEADERS, "content-encoding": "zstd"})
        assert not_zstd.status_code == 400 and "zstd" in not_zstd.json()["error"]["message"]
        assert pool.upstream.codex_requests() == []
        ok = client.post("/backend-api/codex/responses", content=PACK["zstd"](plain),
                         headers={**CODEX_HEADERS, "content-encoding": "zstd"})
        assert ok.status_code == 200


@pytest.mark.parametrize("coding", ["zstd", "gzip"])
def test_a_decompression_bomb_is_refused_with_413_without_inflating_it(coding: str) -> None:
    # About 1 GB of JSON-ish text in a few kilobytes (zstd) or about a megabyte (gzip), against a
    # 2 MB body limit: the proxy stops decoding at the limit.
    bomb_text = b'{"input": "' + b"a" * (1 << 30) + b'"}'
    bomb = PACK[coding](bomb_text)
    del bomb_text
    assert len(bomb) < 2 * 1024 * 1024
    with running_pool(["a"], config={"max-body-mb": 2}) as pool, pool.client() as client:
        tracemalloc.start()
        try:
            refused = client.post("/backend-api/codex/responses", content=bomb,
                                  headers={**CODEX_HEADERS, "content-encoding": coding})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert refused.status_code == 413
        assert "decompresses to more than the 2 MB limit" in refused.json()["error"]["message"]
        # Everything allocated in this process while the request ran (client, proxy, fake), a few
        # times the limit at most: nowhere near the gigabyte inside.
        assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
        assert pool.upstream.codex_requests() == []
