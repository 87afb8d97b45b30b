"""Reading a request body once: what routing needs comes out, everything else stays the client's bytes."""

from __future__ import annotations

import json

import pytest

from tray.proxy.body import NotAnObject, is_blank, parse_object, read_fields


def test_only_the_fields_routing_reads_are_kept() -> None:
    raw = json.dumps({"model": "gpt-5.5", "input": [{"type": "message"}] * 3, "tools": [{"x": 1}],
                      "prompt_cache_key": "conv-1", "service_tier": None}).encode()
    assert read_fields(raw) == {"model": "gpt-5.5", "prompt_cache_key": "conv-1", "service_tier": None}


def test_what_the_standard_library_accepted_is_still_accepted() -> None:
    # orjson refuses these; the proxy took them before and passes them on unchanged now too.
    assert read_fields(b'{"model": "m", "temperature": NaN}') == {"model": "m"}
    assert read_fields(b'{"model": "m", "input": "\\ud800"}') == {"model": "m"}
    assert read_fields('{"model": "m"}'.encode("utf-16")) == {"model": "m"}


@pytest.mark.parametrize("raw", [b"{not json", b'{"a": 1', b"\xff\xfe\xfa"])
def test_malformed_json_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        read_fields(raw)


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"3"])
def test_json_that_is_no_object_is_refused(raw: bytes) -> None:
    with pytest.raises(NotAnObject):
        read_fields(raw)
    with pytest.raises(NotAnObject):
        parse_object(raw)


@pytest.mark.parametrize("raw", [
    rb'{"seed": 123456789012345678901234567890, "top_p": 0.1, "text": "h\u00e9llo \ud83d\ude00"}',
    rb'{"temperature": NaN, "text": "\ud800"}',  # only the standard library reads these
])
def test_the_full_parse_writes_back_what_it_read(raw: bytes) -> None:
    obj, encode = parse_object(raw)
    again, _ = parse_object(encode(obj))
    assert json.dumps(again) == json.dumps(obj) == json.dumps(json.loads(raw))


def test_blank_bodies() -> None:
    assert is_blank(b"") and is_blank(b" \r\n\t")
    assert not is_blank(b" {}")
