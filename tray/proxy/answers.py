"""Upstream answers the proxy reads whole before the client gets anything: an error body (a few
kilobytes, to classify it), an error answer passed on to the client (the account's token redacted
from it: upstream may echo the Authorization header), the model list (converted to OpenAI's shape)
and the non-streaming ``/v1/responses`` answer (reduced to its final object). Each is read with a
size limit, compressed or not, and the large ones are converted off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from starlette.responses import Response

from tray.proxy.decoding import READ_ERRORS, BodyTooLarge, body_chunks, read_body, wire_headers
from tray.proxy.relay import Opened
from tray.proxy.shaping import client_headers, error_body, openai_model_list, redact
from tray.proxy.sse import SSEEvent, completed_response

log = logging.getLogger(__name__)

ERROR_BODY_LIMIT = 64 * 1024  # bytes of a failed answer read for its error details
PASSED_ON_LIMIT = 1024 * 1024  # an error answer the client gets as is (upstream's are a few kB)
MODELS_LIMIT = 32 * 1024 * 1024  # Codex's model list is tens of kilobytes
AGGREGATE_LIMIT = 64 * 1024 * 1024  # a whole non-streaming answer (its final object holds all output)


def _error(status: int, message: str, code: str) -> Response:
    return Response(json.dumps(error_body(message, code)), status, media_type="application/json")


async def read_some(response: httpx.Response, limit: int = ERROR_BODY_LIMIT) -> bytes:
    """Up to ``limit`` bytes of an answer (decoded), then close it; a broken read keeps what came."""
    data = bytearray()
    try:
        async for chunk in body_chunks(response, inflate_limit=limit):
            data += chunk
            if len(data) >= limit:
                break
    except READ_ERRORS:
        pass
    finally:
        await response.aclose()
    return bytes(data[:limit])


def buffered(status: int, body: bytes, headers: Iterable[tuple[str, str]], secret: str) -> Response:
    """Upstream's answer as the client gets it: its headers minus ours to set, ``secret`` redacted."""
    answer = Response(redact(body, secret), status_code=status)
    kept = client_headers(headers, secret)
    answer.raw_headers += [(n.encode("latin-1"), v.encode("latin-1")) for n, v in kept]
    return answer


async def read_passed_on(response: httpx.Response) -> bytes | Response:
    """The body of an answer that is the client's though not a success (400, 404, 422...), read
    whole; or the client's 502 when it is too large or breaks off."""
    try:
        return await read_body(response, PASSED_ON_LIMIT, what="error answer")
    except BodyTooLarge as exc:
        return _error(502, str(exc), "upstream_too_large")
    except READ_ERRORS:
        return _error(502, "The Codex backend's answer broke off.", "upstream_unreachable")
    finally:
        await response.aclose()


async def passed_on(response: httpx.Response, secret: str) -> Response:
    """Such an answer as the client gets it."""
    body = await read_passed_on(response)
    if isinstance(body, Response):
        return body
    return buffered(response.status_code, body, wire_headers(response), secret)


def _openai_models(raw: bytes) -> bytes:
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    return json.dumps(openai_model_list(payload)).encode()


async def model_list(response: httpx.Response) -> Response:
    """The upstream model list in OpenAI's list shape (parsed in a worker thread: it can be large)."""
    try:
        raw = await read_body(response, MODELS_LIMIT, what="model list")
    except BodyTooLarge as exc:
        log.warning("model list refused: %s", exc)
        return _error(502, str(exc), "upstream_too_large")
    except READ_ERRORS as exc:
        log.warning("model list could not be read: %s", exc)
        return _error(502, "The Codex backend's model list broke off.", "upstream_unreachable")
    finally:
        await response.aclose()
    body = await asyncio.to_thread(_openai_models, raw)
    return Response(body, status_code=200, media_type="application/json")


async def aggregate(opened: Opened, observe: Callable[[SSEEvent], None], source: str,
                    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Response:
    """Non-streaming ``/v1/responses``: read the whole answer, return its final object (passed
    through ``shape`` when given: a Chat Completions request gets a ``chat.completion``).

    ``observe`` sees every event (the caller watches for rate limits); only the final object is
    kept. ``source`` names the account in log lines."""
    parser = opened.parser
    final: dict[str, Any] | None = None
    size = sum(len(chunk) for chunk in opened.held)

    def take(event: SSEEvent) -> None:
        nonlocal final
        observe(event)
        found = completed_response(event)
        if found is not None:
            final = found

    for event in opened.events:
        take(event)
    try:
        async for chunk in opened.chunks:
            size += len(chunk)
            if size > AGGREGATE_LIMIT:
                message = f"The Codex backend's answer is larger than {AGGREGATE_LIMIT // 1024 // 1024} MB."
                log.warning("answer from %s refused: %s", source, message)
                return _error(502, message, "upstream_too_large")
            for event in parser.feed(chunk):
                take(event)
    except READ_ERRORS as exc:
        log.warning("answer from %s was cut off (%s)", source, type(exc).__name__)
    finally:
        await opened.response.aclose()
    tail = parser.flush()
    if tail is not None:
        take(tail)
    if final is None:
        return _error(502, "The Codex backend ended the answer before it was complete.", "incomplete_stream")
    if final.get("status") == "failed":
        err = final.get("error") or {"message": "The response failed.", "code": "response_failed"}
        return Response(json.dumps({"error": err}), 502, media_type="application/json")
    return Response(json.dumps(final if shape is None else shape(final)), 200, media_type="application/json")
