"""How a client request becomes an upstream attempt, and upstream answers become client answers
(pure): forwarded headers, the ``/v1/responses`` body shaped like Codex CLI shapes its own, and the
model list in OpenAI's list shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Never forwarded upstream: hop-by-hop headers, our own local key and management token, the
# client's idea of the account, and things that describe the client's connection to *us* (or the
# proxies in front of it) rather than the request.
DROP_REQUEST_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "accept-encoding",
        "authorization",
        "x-api-key",
        "chatgpt-account-id",
        "cookie",
        "origin",
        "referer",
        "x-codex-turn-state",
        "x-codex-pool-token",
        "forwarded",
        "x-real-ip",
        "via",
    }
)
DROP_REQUEST_PREFIXES = ("x-forwarded-",)
# Never passed back to the client: hop-by-hop headers, framing that no longer matches the
# (decoded, re-chunked) body, cookies chatgpt.com set for its own origin, CORS grants (the proxy's
# origin is not chatgpt.com's), and server/date, which our own server sends.
DROP_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "set-cookie",
        "alt-svc",
        "strict-transport-security",
        "server",
        "date",
    }
)
DROP_RESPONSE_PREFIXES = ("access-control-",)
TURN_STATE = "x-codex-turn-state"
REDACTED = b"[redacted]"
MIN_REDACTED = 16  # a shorter part of a token is no secret on its own and could match anything
ACCEPT_ENCODING = "gzip, deflate"  # the encodings tray.proxy.decoding undoes itself, piece by piece

# /v1/responses parameters the Codex backend rejects; dropped with a log line.
UNSUPPORTED_PARAMS = (
    "max_output_tokens",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "truncation",
    "user",
    "frequency_penalty",
    "presence_penalty",
    "top_logprobs",
    "logprobs",
    "seed",
    "background",
)
ENCRYPTED_REASONING = "reasoning.encrypted_content"
DEFAULT_INSTRUCTIONS = ""
DEFAULT_ORIGINATOR = "codex_cli_rs"


def hop_by_hop(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The header names a sender lists in its ``Connection`` headers: they describe that one
    connection (RFC 9110 §7.6.1) and are not forwarded."""
    names: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            names.update(token.strip().lower() for token in value.split(",") if token.strip())
    return frozenset(names)


def upstream_headers(
    client_headers: Iterable[tuple[str, str]],
    *,
    access_token: str,
    chatgpt_account_id: str | None,
    turn_state: str | None = None,
    defaults: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """The headers of one upstream attempt: the client's own minus the dropped ones, with this
    account's credentials and (only when this account issued it) the turn state."""
    client_headers = list(client_headers)
    hop = hop_by_hop(client_headers)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in client_headers:
        lower = name.lower()
        if lower in DROP_REQUEST_HEADERS or lower in hop or lower.startswith(DROP_REQUEST_PREFIXES):
            continue
        seen.add(lower)
        out.append((lower, value))
    for name, value in (defaults or {}).items():
        if name.lower() not in seen:
            out.append((name.lower(), value))
    out.append(("accept-encoding", ACCEPT_ENCODING))
    out.append(("authorization", f"Bearer {access_token}"))
    if chatgpt_account_id:
        out.append(("chatgpt-account-id", chatgpt_account_id))
    if turn_state:
        out.append((TURN_STATE, turn_state))
    return out


def client_headers(upstream: Iterable[tuple[str, str]], secret: str | None = None) -> list[tuple[str, str]]:
    """Upstream response headers that may go back to the client, ``secret`` redacted from them."""
    kept = [(n.lower(), v) for n, v in upstream
            if n.lower() not in DROP_RESPONSE_HEADERS and not n.lower().startswith(DROP_RESPONSE_PREFIXES)]
    if not secret:
        return kept
    return [(n, redact(v.encode("latin-1"), secret).decode("latin-1")) for n, v in kept]


def redact(data: bytes, secret: str) -> bytes:
    """``data`` with every copy of ``secret`` (an access token) replaced, and of the parts of it that
    are a credential or its claims on their own (a JWT's header.payload, payload and signature)."""
    parts = secret.split(".")
    pieces = [secret]
    if len(parts) == 3:
        pieces += [p for p in (f"{parts[0]}.{parts[1]}", parts[1], parts[2]) if len(p) >= MIN_REDACTED]
    for piece in pieces:
        if piece and piece.encode() in data:
            data = data.replace(piece.encode(), REDACTED)
    return data


def shape_v1_body(body: dict[str, Any]) -> tuple[dict[str, Any], list[str], bool]:
    """Shape an OpenAI ``/v1/responses`` body for the Codex backend.

    Returns ``(shaped, dropped_param_names, client_wants_stream)``. The caller's object is not
    changed.
    """
    shaped = dict(body)
    wants_stream = shaped.get("stream") is True
    dropped = [name for name in UNSUPPORTED_PARAMS if name in shaped]
    for name in dropped:
        del shaped[name]
    shaped["stream"] = True
    shaped["store"] = False
    include = shaped.get("include")
    items = [i for i in include if isinstance(i, str)] if isinstance(include, list) else []
    if ENCRYPTED_REASONING not in items:
        items.append(ENCRYPTED_REASONING)
    shaped["include"] = items
    if not isinstance(shaped.get("instructions"), str):
        shaped["instructions"] = DEFAULT_INSTRUCTIONS
    text = shaped.get("input")
    if isinstance(text, str):
        shaped["input"] = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        ]
    return shaped, dropped, wants_stream


def openai_model_list(payload: Any) -> dict[str, Any]:
    """Codex's model list (``{"models": [{"slug": ...}]}``, or already OpenAI-shaped) as
    ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}``."""
    entries: list[Any] = []
    if isinstance(payload, dict):
        if isinstance(payload.get("models"), list):
            entries = payload["models"]
        elif isinstance(payload.get("data"), list):
            entries = payload["data"]
    elif isinstance(payload, list):
        entries = payload
    data: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in entries:
        model_id: Any = entry
        if isinstance(entry, dict):
            model_id = entry.get("slug") or entry.get("id") or entry.get("name")
        if isinstance(model_id, str) and model_id and model_id not in seen:
            seen.add(model_id)
            data.append({"id": model_id, "object": "model", "created": 0, "owned_by": "openai"})
    return {"object": "list", "data": data}


def error_body(message: str, code: str, err_type: str = "codex_pool_error", **extra: Any) -> dict[str, Any]:
    """An OpenAI-style error object; ``message`` must never hold a secret."""
    error: dict[str, Any] = {"message": message, "type": err_type, "code": code}
    error.update(extra)
    return {"error": error}
