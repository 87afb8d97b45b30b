"""A client's request body: checked and read once, then forwarded as the client's own bytes.

Codex sends the whole conversation on every turn, so a long session's request is a megabyte and
more. The proxy reads from it only what routing needs (:data:`ROUTING_FIELDS`: the affinity key,
the caller's service tier, the model) and never re-serializes a body it does not change.

:func:`read_fields` checks that the bytes are one JSON object and decodes just those fields with
msgspec, which walks past every other value without building it: a 1.3 MB body costs about 0.3 ms
and no memory (the standard library took 4.5 ms and built a tree of some 18 MB). Values it skips
are checked for JSON syntax but not for UTF-8: a body with broken UTF-8 inside a string the proxy
does not read is left for the Codex backend to refuse, as it refuses any body it cannot read.

:func:`parse_object` is the full parse, for the ``/v1`` route whose body is reshaped: msgspec both
ways, numbers kept exactly.

What msgspec refuses but the standard library took (``NaN``, lone surrogates, a byte-order mark,
UTF-16 text) is read by the standard library, so the proxy accepts the bodies it always did.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import msgspec

ROUTING_FIELDS = ("model", "prompt_cache_key", "service_tier", "serviceTier")
Encoder = Callable[[Mapping[str, Any]], bytes]
PRESIZE_LIMIT = 8 * 2**20  # bytes of a declared body reserved before they arrive


async def read_limited(stream: AsyncIterator[bytes], declared: str | None, limit: int,
                       too_big: Exception) -> bytes:
    """A request body of at most ``limit`` bytes, else ``too_big`` is raised: on the declared
    ``Content-Length`` before anything is read, and while reading, so a huge (or endless) body is
    refused after ``limit`` bytes instead of being held in memory first.

    The chunks are written into one buffer sized from the declared length (up to
    :data:`PRESIZE_LIMIT`), whose bytes are then handed over without a copy: a megabyte body is
    held once while it arrives, not twice as a list of chunks and their join."""
    size = int(declared) if declared and declared.isdigit() else 0
    if size > limit:
        raise too_big
    # A declared length is only a promise: memory is reserved for at most PRESIZE_LIMIT of it
    # before the bytes arrive, and the buffer grows past that only with what really came.
    buffer = io.BytesIO(bytes(min(size, PRESIZE_LIMIT)))
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise too_big
        buffer.write(chunk)
    buffer.truncate(received)
    return buffer.getvalue()  # the buffer's own bytes object when nothing else holds it: no copy


class NotAnObject(ValueError):
    """The body is JSON, but not an object."""


class _Fields(msgspec.Struct):
    """The top-level members routing reads; msgspec skips every other one without decoding it."""

    model: Any = msgspec.UNSET
    prompt_cache_key: Any = msgspec.UNSET
    service_tier: Any = msgspec.UNSET
    serviceTier: Any = msgspec.UNSET  # the JSON member's own name


_FIELDS = msgspec.json.Decoder(_Fields)
_ANY = msgspec.json.Decoder()
_ENCODE = msgspec.json.Encoder()


def is_blank(raw: bytes) -> bool:
    """Empty or only whitespace (such a body is forwarded as it is, with nothing to read)."""
    return not raw or raw.isspace()


def read_fields(raw: bytes) -> dict[str, Any]:
    """The :data:`ROUTING_FIELDS` ``raw`` has, after checking that it is one JSON object. Raises
    ``ValueError`` when it is not JSON, :class:`NotAnObject` when it is other JSON."""
    try:
        fields = _FIELDS.decode(raw)
    except msgspec.ValidationError:
        raise NotAnObject("The request body must be a JSON object.") from None
    except msgspec.DecodeError:
        return routing_fields(_stdlib(raw))
    return {name: value for name in ROUTING_FIELDS if (value := getattr(fields, name)) is not msgspec.UNSET}


def parse_object(raw: bytes) -> tuple[dict[str, Any], Encoder]:
    """The JSON object ``raw`` holds, and the encoder to write it back with (the standard library's
    for what only it could read, so a ``NaN`` stays ``NaN``). Raises as :func:`read_fields`, and
    :class:`NotAnObject` for an empty body."""
    if is_blank(raw):
        raise NotAnObject("The request body must be a JSON object.")
    try:
        obj = _ANY.decode(raw)
    except msgspec.DecodeError:
        return _stdlib(raw), _stdlib_encode
    if not isinstance(obj, dict):
        raise NotAnObject("The request body must be a JSON object.")
    return obj, _ENCODE.encode


def routing_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`ROUTING_FIELDS` a parsed body has."""
    return {name: obj[name] for name in ROUTING_FIELDS if name in obj}


def _stdlib(raw: bytes) -> dict[str, Any]:
    obj = json.loads(raw)  # raises ValueError on what neither parser takes
    if not isinstance(obj, dict):
        raise NotAnObject("The request body must be a JSON object.")
    return obj


def _stdlib_encode(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()  # ASCII: a lone surrogate stays escaped


# ---- encrypted items ----------------------------------------------------------------------------

# The member's key, quotes included: the ``include`` value "reasoning.encrypted_content" differs.
SEALED_KEY = b'"encrypted_content"'


class _Sealed(msgspec.Struct):
    """An input item, of which only its encrypted content is read."""

    encrypted_content: Any = msgspec.UNSET


class _Context(msgspec.Struct):
    """A request body, of which only its input items are read (each as :class:`_Sealed`)."""

    input: list[_Sealed] | str | None = None


_CONTEXT = msgspec.json.Decoder(_Context)


def sealed_blobs(text: bytes) -> tuple[str, ...]:
    """The ``encrypted_content`` of the body's input items (reasoning, compaction): the items only
    the account that made them can read. A body without that key costs one search of its bytes;
    one with it, a walk that builds nothing but those strings."""
    if SEALED_KEY not in text:
        return ()
    try:
        items: Any = _CONTEXT.decode(text).input
        blobs = [i.encrypted_content for i in items] if isinstance(items, list) else []
    except msgspec.DecodeError:  # what only the standard library reads, or items that are no objects
        try:
            return sealed_in(_stdlib(text))
        except ValueError:
            return ()
    return tuple(b for b in blobs if isinstance(b, str))


def sealed_in(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """:func:`sealed_blobs` of a body already parsed."""
    items = obj.get("input")
    if not isinstance(items, list):
        return ()
    found = (i.get("encrypted_content") for i in items if isinstance(i, dict))
    return tuple(b for b in found if isinstance(b, str))


def without_sealed(obj: Mapping[str, Any], drop: Callable[[str], bool]
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``obj`` without the input items whose ``encrypted_content`` ``drop`` names, and those items;
    every other member and item as it was."""
    items = obj.get("input")
    if not isinstance(items, list):
        return dict(obj), []
    gone = [i for i in items if isinstance(i, dict) and isinstance(i.get("encrypted_content"), str)
            and drop(i["encrypted_content"])]
    if not gone:
        return dict(obj), []
    left = {id(i) for i in gone}
    return {**obj, "input": [i for i in items if id(i) not in left]}, gone
