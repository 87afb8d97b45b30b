"""Client config text transforms: the user's other settings and comments survive, undo is exact."""

from __future__ import annotations

import json
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tray.clients import texts as cc
from tray.errors import ClientSetupError

URL = "http://127.0.0.1:4455"
KEY = "cp-local-key"

USER_TOML = """\
# my Codex settings
model = "gpt-5.5"   # the good one
approval_policy = "on-request"
model_provider = "openai"

[model_providers.other]
name = "Other"  # keep me
base_url = "http://127.0.0.1:9000/v1"

[profiles.fast]
model = "o4-mini"
"""


def test_codex_apply_adds_and_selects_the_provider_keeping_everything_else() -> None:
    out = cc.codex_apply(USER_TOML, URL, KEY)
    data = tomllib.loads(out)
    assert data["model_provider"] == "codex-pool"
    assert data["model_providers"]["codex-pool"] == {
        "name": "codex-pool",
        "base_url": "http://127.0.0.1:4455/backend-api/codex",
        "wire_api": "responses",
        "experimental_bearer_token": KEY,
        "supports_websockets": True,  # Codex speaks the Responses API over one socket per session
    }
    assert data["model_providers"]["other"]["name"] == "Other"
    assert data["profiles"]["fast"]["model"] == "o4-mini"
    for line in ("# my Codex settings", 'model = "gpt-5.5"   # the good one', 'name = "Other"  # keep me'):
        assert line in out
    assert cc.codex_applied(out) and cc.codex_applied(out, URL)
    assert not cc.codex_applied(out, "http://127.0.0.1:9999")
    assert not cc.codex_applied(USER_TOML)


def test_codex_apply_twice_is_stable_and_replaces_an_old_port() -> None:
    once = cc.codex_apply(USER_TOML, URL, KEY)
    assert cc.codex_apply(once, URL, KEY) == once
    moved = cc.codex_apply(once, "http://127.0.0.1:5000", KEY)
    assert tomllib.loads(moved)["model_providers"]["codex-pool"]["base_url"].startswith(
        "http://127.0.0.1:5000/"
    )
    assert moved.count("[model_providers.codex-pool]") == 1


def test_codex_apply_on_an_empty_file() -> None:
    data = tomllib.loads(cc.codex_apply("", URL, KEY))
    assert data["model_provider"] == "codex-pool"
    assert set(data["model_providers"]) == {"codex-pool"}


def test_codex_remove_puts_the_previous_provider_back() -> None:
    previous = cc.codex_previous(USER_TOML)
    assert previous.model_provider == "openai"
    applied = cc.codex_apply(USER_TOML, URL, KEY)
    edited = applied.replace('approval_policy = "on-request"', 'approval_policy = "never"')
    restored = cc.codex_remove(edited, previous)
    assert restored == USER_TOML.replace('approval_policy = "on-request"', 'approval_policy = "never"')


def test_codex_remove_without_a_previous_provider_drops_the_key() -> None:
    applied = cc.codex_apply('model = "x"\n', URL, KEY)
    assert tomllib.loads(cc.codex_remove(applied, cc.CodexPrevious(None))) == {"model": "x"}


def test_broken_toml_is_a_clear_error() -> None:
    with pytest.raises(ClientSetupError, match=r"config.toml is not valid TOML .*nothing was changed"):
        cc.codex_apply("model = \n[[", URL, KEY)
    with pytest.raises(ClientSetupError, match="model_providers is not a table"):
        cc.codex_apply('model_providers = "x"\n', URL, KEY)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True).filter(lambda k: k not in {"model_provider"}),
        st.one_of(st.integers(-5, 5), st.text(max_size=8), st.booleans()),
        max_size=5,
    )
)
def test_codex_apply_then_remove_keeps_any_top_level_settings(settings_: dict[str, object]) -> None:
    import tomli_w

    text = tomli_w.dumps(settings_)
    round_trip = cc.codex_remove(cc.codex_apply(text, URL, KEY), cc.codex_previous(text))
    assert tomllib.loads(round_trip) == settings_


USER_JSON = """{
    "$schema": "https://opencode.ai/config.json",
    "model": "openai/gpt-5.5",
    "provider": {
        "openai": {
            "models": {"gpt-5.5": {"name": "GPT"}},
            "options": {"timeout": 60000}
        },
        "anthropic": {"options": {"apiKey": "x"}}
    }
}
"""


def test_opencode_apply_sets_base_url_and_key_keeping_the_rest() -> None:
    out = cc.opencode_apply(USER_JSON, URL, KEY)
    data = json.loads(out)
    assert data["provider"]["openai"]["options"] == {
        "timeout": 60000,
        "baseURL": "http://127.0.0.1:4455/v1",
        "apiKey": KEY,
    }
    assert data["provider"]["anthropic"] == {"options": {"apiKey": "x"}}
    assert data["model"] == "openai/gpt-5.5"
    assert '\n    "model"' in out  # the file's four-space indent is kept
    assert cc.opencode_applied(out, URL) and cc.opencode_applied(out)
    assert not cc.opencode_applied(USER_JSON)


def test_opencode_remove_restores_previous_values() -> None:
    previous = cc.opencode_previous(USER_JSON)
    removed = json.loads(cc.opencode_remove(cc.opencode_apply(USER_JSON, URL, KEY), previous))
    assert removed == json.loads(USER_JSON)
    empty = cc.opencode_apply("", URL, KEY)
    assert json.loads(cc.opencode_remove(empty, cc.OpencodePrevious(None, None))) == {
        "$schema": "https://opencode.ai/config.json"
    }


def test_opencode_jsonc_and_wrong_shapes_are_clear_errors() -> None:
    with pytest.raises(ClientSetupError, match=r"not plain JSON .*comments"):
        cc.opencode_apply('{\n  // a comment\n  "model": "x"\n}\n', URL, KEY)
    with pytest.raises(ClientSetupError, match="does not hold a JSON object"):
        cc.opencode_apply("[1, 2]", URL, KEY)
    with pytest.raises(ClientSetupError, match="'openai' is not an object"):
        cc.opencode_apply('{"provider": {"openai": "nope"}}', URL, KEY)


def test_opencode_oauth_login_detection() -> None:
    assert cc.opencode_oauth_login('{"openai": {"type": "oauth", "refresh": "r", "access": "a"}}')
    assert not cc.opencode_oauth_login('{"openai": {"type": "api", "key": "k"}}')
    assert not cc.opencode_oauth_login("not json")


def test_snippets_hold_the_exact_settings() -> None:
    snips = cc.snippets(URL + "/", KEY)
    codex = tomllib.loads(snips["codex"])
    assert codex["model_provider"] == "codex-pool"
    assert codex["model_providers"]["codex-pool"]["base_url"] == "http://127.0.0.1:4455/backend-api/codex"
    assert codex["model_providers"]["codex-pool"]["experimental_bearer_token"] == KEY
    assert codex["model_providers"]["codex-pool"]["supports_websockets"] is True
    opencode = json.loads(snips["opencode"])
    assert opencode["provider"]["openai"]["options"] == {"baseURL": "http://127.0.0.1:4455/v1", "apiKey": KEY}


@pytest.mark.parametrize(
    "text",
    [
        'model_providers = { foo = { name = "x" } }\n',
        'model_providers.foo.name = "x"\n',
        '[model_providers]\nfoo = { name = "x" }\n',
        "[other]\na = 1\n",
    ],
    ids=["inline", "dotted", "explicit", "tables-only"],
)
def test_every_way_of_writing_model_providers_round_trips(text: str) -> None:
    applied = cc.codex_apply(text, URL, KEY)
    data = tomllib.loads(applied)
    assert data["model_provider"] == "codex-pool"
    assert data["model_providers"]["codex-pool"]["base_url"] == "http://127.0.0.1:4455/backend-api/codex"
    assert cc.codex_remove(applied, cc.codex_previous(text)) == text


def test_clients_dial_127_0_0_1_not_localhost() -> None:
    assert cc.codex_base_url("http://localhost:4455/") == "http://127.0.0.1:4455/backend-api/codex"
    assert cc.openai_base_url("http://0.0.0.0:4455") == "http://127.0.0.1:4455/v1"
    assert cc.openai_base_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/v1"
