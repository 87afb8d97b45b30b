"""The request bodies the proxy benchmark sends, all made from one real Codex request.

``codex_request.json`` beside this file is what Codex CLI 0.169.0 sent on the first turn of a
``codex exec`` session (instructions, 17 kB of tool definitions, the user's input: 43,006 bytes),
captured on loopback, without its Authorization, Host and Content-Length headers.

- :func:`real_body` is that request byte for byte (serde_json's compact form, UTF-8 unescaped);
- :func:`conversation_body` is a long session: Codex sends the whole conversation again on every
  turn, so the sample's ``input`` items repeated until the body reaches the size asked for;
- :func:`small_body` is a short request of about the size asked for (no tools, one user message);
- :data:`TINY_BODY` is the 60-byte body the benchmark used to send, kept as a floor.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).with_name("codex_request.json")
TINY_BODY = json.dumps({"model": "gpt-5.5", "stream": True, "store": False, "input": "say hi"}).encode()
# Headers that name the caller's connection or credentials: the benchmark sets its own.
OWN_HEADERS = frozenset({"authorization", "host", "content-length", "chatgpt-account-id", "connection"})


@cache
def _sample() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return loaded


def encode(obj: dict[str, Any]) -> bytes:
    """JSON the way Codex CLI writes it: compact, non-ASCII as UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def codex_headers() -> list[tuple[str, str]]:
    """The sample's request headers (session and thread ids, turn metadata, user agent...), less
    those the benchmark sets per target."""
    headers: dict[str, str] = _sample()["headers"]
    return [(k, v) for k, v in headers.items() if k not in OWN_HEADERS]


def real_body() -> bytes:
    """The real first-turn request, byte for byte."""
    return encode(_sample()["body"])


def conversation_body(size: int) -> bytes:
    """A long session's request of at least ``size`` bytes: the sample with its ``input`` items
    repeated (as if earlier turns were sent again)."""
    body = dict(_sample()["body"])
    items: list[Any] = body["input"]
    copies = 1
    while True:
        body["input"] = items * copies
        raw = encode(body)
        if len(raw) >= size:
            return raw
        copies = max(copies + 1, int(copies * size / len(raw)))


def small_body(size: int) -> bytes:
    """A request of about ``size`` bytes (at least a few hundred): the sample's settings, no tools,
    one user message padded with the sample's own text."""
    sample = _sample()["body"]
    body = {k: v for k, v in sample.items() if k not in ("input", "tools", "client_metadata")}
    body["tools"] = []
    filler = sample["input"][0]["content"][0]["text"]
    message = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": ""}]}
    body["input"] = [message]
    room = max(0, size - len(encode(body)))
    text = (filler * (room // max(1, len(filler)) + 1))[:room]
    message["content"][0]["text"] = text
    raw = encode(body)
    while len(raw) > size and text:  # escaped characters made it longer: trim to fit
        text = text[: len(text) - (len(raw) - size)]
        message["content"][0]["text"] = text
        raw = encode(body)
    return raw


def body_for(name: str) -> bytes:
    """A body by name: ``60B``, ``real``, or a size such as ``1kB``, ``250kB``, ``1MB``, ``1.3MB``
    (below the real request's size a short request, above it a long conversation)."""
    if name == "60B":
        return TINY_BODY
    if name == "real":
        return real_body()
    units = {"kB": 1024, "MB": 1024 * 1024}
    for unit, scale in units.items():
        if name.endswith(unit):
            size = int(float(name[: -len(unit)]) * scale)
            return small_body(size) if size < len(real_body()) else conversation_body(size)
    raise ValueError(f"unknown body {name!r}: use 60B, real, or a size like 250kB or 1.3MB")


def label(size: int) -> str:
    """``43.0 kB``, ``1.30 MB``: a body's size for the report."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size / 2**20:.2f} MB"
