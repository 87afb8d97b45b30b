"""Client configuration as text transforms: pure functions, no file I/O.

Codex CLI reads ``$CODEX_HOME/config.toml``; codex-pool adds a ``[model_providers.codex-pool]``
table that points at the proxy and selects it with the top-level ``model_provider``. The local key
travels as ``experimental_bearer_token`` (honoured by Codex CLI 0.169.0, checked against the real
binary), so nobody has to export an environment variable before starting Codex, and
``supports_websockets = true`` lets Codex speak the Responses API over one WebSocket per session
(the proxy relays it, see ``tray/proxy/sockets.py``). The TOML is edited
with tomlkit, which keeps the user's other settings, comments and layout byte for byte.

opencode reads ``$XDG_CONFIG_HOME/opencode/opencode.json``; codex-pool sets the built-in
``openai`` provider's ``options.baseURL`` and ``options.apiKey`` and keeps everything else.

Each ``*_apply`` returns the new text; ``*_remove`` takes codex-pool's settings out again (used when
the file changed after setup, so the saved copy can no longer be put back as it was).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomlkit
import tomlkit.exceptions
from tomlkit.items import InlineTable, Table

from tray.errors import ClientSetupError

PROVIDER_ID = "codex-pool"
CODEX_MARKER = "Added by `codex-pool setup codex`; `codex-pool setup codex --undo` takes it out."


def client_url(proxy_url: str) -> str:
    """The proxy address as a client on this machine should dial it: ``localhost`` and a wildcard
    bind become ``127.0.0.1`` (some clients resolve localhost to ::1 first, where nothing listens)."""
    parts = urlsplit(proxy_url.rstrip("/"))
    if parts.hostname in ("localhost", "0.0.0.0") and parts.port is not None:
        parts = parts._replace(netloc=f"127.0.0.1:{parts.port}")
    return urlunsplit(parts)


def codex_base_url(proxy_url: str) -> str:
    return client_url(proxy_url) + "/backend-api/codex"


def openai_base_url(proxy_url: str) -> str:
    return client_url(proxy_url) + "/v1"


# ---------------------------------------------------------------- Codex CLI (config.toml)


@dataclass(frozen=True)
class CodexPrevious:
    """What codex-pool replaced in config.toml, so a surgical undo can put it back."""

    model_provider: str | None


def _parse_toml(text: str, where: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ClientSetupError(
            f"{where} is not valid TOML ({exc}); fix it first, nothing was changed"
        ) from exc


def _provider_table(proxy_url: str, key: str) -> Table:
    table = tomlkit.table()
    table.add(tomlkit.comment(CODEX_MARKER))
    table.add("name", PROVIDER_ID)
    table.add("base_url", codex_base_url(proxy_url))
    table.add("wire_api", "responses")
    table.add("experimental_bearer_token", key)
    table.add("supports_websockets", True)
    table.add(tomlkit.nl())
    return table


def _one_final_newline(text: str) -> str:
    # tomlkit leaves a blank line where a table was appended or taken out at the end of the file.
    return text.rstrip("\n") + "\n" if text.strip() else ""


def codex_apply(text: str, proxy_url: str, key: str, where: str = "config.toml") -> str:
    """``text`` with the codex-pool provider added (or replaced) and selected."""
    doc = _parse_toml(text, where)
    providers = doc.get("model_providers")
    if providers is None:
        providers = tomlkit.table(is_super_table=True)
        doc["model_providers"] = providers
    elif not isinstance(providers, dict):
        raise ClientSetupError(f"{where}: model_providers is not a table; fix it first, nothing was changed")
    if isinstance(providers, InlineTable):  # model_providers = { ... } on one line: stay inline
        entry = tomlkit.inline_table()
        entry.update({k: v for k, v in _provider_table(proxy_url, key).items()})
        providers[PROVIDER_ID] = entry
    else:
        providers[PROVIDER_ID] = _provider_table(proxy_url, key)
    doc["model_provider"] = PROVIDER_ID
    return _one_final_newline(tomlkit.dumps(doc))


def codex_previous(text: str, where: str = "config.toml") -> CodexPrevious:
    value = _parse_toml(text, where).get("model_provider")
    return CodexPrevious(model_provider=str(value) if value is not None else None)


def codex_applied(text: str, proxy_url: str | None = None) -> bool:
    """Whether ``text`` selects the codex-pool provider (pointing at ``proxy_url`` when given)."""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError:
        return False
    providers = doc.get("model_providers")
    provider = providers.get(PROVIDER_ID) if isinstance(providers, dict) else None
    if doc.get("model_provider") != PROVIDER_ID or not isinstance(provider, dict):
        return False
    return proxy_url is None or provider.get("base_url") == codex_base_url(proxy_url)


def codex_remove(text: str, previous: CodexPrevious, where: str = "config.toml") -> str:
    """``text`` without the codex-pool provider; ``model_provider`` goes back to what it was."""
    doc = _parse_toml(text, where)
    providers = doc.get("model_providers")
    if isinstance(providers, dict) and PROVIDER_ID in providers:
        del providers[PROVIDER_ID]
        if not providers:
            del doc["model_providers"]
    if doc.get("model_provider") == PROVIDER_ID:
        del doc["model_provider"]
        if previous.model_provider is not None:
            doc["model_provider"] = previous.model_provider
    return _one_final_newline(tomlkit.dumps(doc).lstrip("\n"))


def codex_snippet(proxy_url: str, key: str) -> str:
    return (
        f'model_provider = "{PROVIDER_ID}"\n\n'
        f"[model_providers.{PROVIDER_ID}]\n"
        f'name = "{PROVIDER_ID}"\n'
        f'base_url = "{codex_base_url(proxy_url)}"\n'
        'wire_api = "responses"\n'
        f"experimental_bearer_token = {json.dumps(key)}\n"
        "supports_websockets = true\n"
    )


# ---------------------------------------------------------------- opencode (opencode.json)


@dataclass(frozen=True)
class OpencodePrevious:
    """The ``provider.openai.options`` values codex-pool replaced (None = absent)."""

    base_url: Any
    api_key: Any


def _parse_json(text: str, where: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientSetupError(
            f"{where} is not plain JSON (line {exc.lineno}: {exc.msg}); comments are not supported here, "
            "so add the settings by hand (see docs/clients.md); nothing was changed"
        ) from exc
    if not isinstance(data, dict):
        raise ClientSetupError(f"{where} does not hold a JSON object; fix it first, nothing was changed")
    return data


def _section(parent: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    child = parent.setdefault(name, {})
    if not isinstance(child, dict):
        raise ClientSetupError(f"{where}: '{name}' is not an object; fix it first, nothing was changed")
    return child


def _indent(text: str) -> str | int:
    match = re.search(r"^([ \t]+)\S", text, re.MULTILINE)
    if match is None:
        return 2
    return "\t" if match.group(1).startswith("\t") else len(match.group(1))


def _dump_json(data: dict[str, Any], like: str) -> str:
    return json.dumps(data, indent=_indent(like), ensure_ascii=False) + "\n"


def opencode_apply(text: str, proxy_url: str, key: str, where: str = "opencode.json") -> str:
    data = _parse_json(text, where)
    if not data:
        data["$schema"] = "https://opencode.ai/config.json"
    options = _section(_section(_section(data, "provider", where), "openai", where), "options", where)
    options["baseURL"] = openai_base_url(proxy_url)
    options["apiKey"] = key
    return _dump_json(data, text)


def opencode_previous(text: str, where: str = "opencode.json") -> OpencodePrevious:
    options = _openai_options(_parse_json(text, where)) or {}
    return OpencodePrevious(options.get("baseURL"), options.get("apiKey"))


def _openai_options(data: dict[str, Any]) -> dict[str, Any] | None:
    provider = data.get("provider")
    openai = provider.get("openai") if isinstance(provider, dict) else None
    options = openai.get("options") if isinstance(openai, dict) else None
    return options if isinstance(options, dict) else None


def opencode_applied(text: str, proxy_url: str | None = None) -> bool:
    try:
        data = _parse_json(text, "opencode.json")
    except ClientSetupError:
        return False
    options = _openai_options(data)
    if options is None or not isinstance(options.get("baseURL"), str):
        return False
    base = options["baseURL"]
    if proxy_url is not None:
        return bool(base == openai_base_url(proxy_url))
    return bool(re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base))


def opencode_remove(text: str, previous: OpencodePrevious, where: str = "opencode.json") -> str:
    data = _parse_json(text, where)
    options = _openai_options(data)
    if options is not None:
        for name, value in (("baseURL", previous.base_url), ("apiKey", previous.api_key)):
            if value is None:
                options.pop(name, None)
            else:
                options[name] = value
        # Drop the empty objects codex-pool created on the way down.
        openai = data["provider"]["openai"]
        if not options:
            del openai["options"]
        if not openai:
            del data["provider"]["openai"]
        if not data["provider"]:
            del data["provider"]
    return _dump_json(data, text)


def opencode_oauth_login(auth_text: str) -> bool:
    """Whether opencode's auth.json holds an ``openai`` OAuth login (which bypasses baseURL)."""
    try:
        data = json.loads(auth_text)
    except json.JSONDecodeError:
        return False
    entry = data.get("openai") if isinstance(data, dict) else None
    return isinstance(entry, dict) and entry.get("type") == "oauth"


def opencode_snippet(proxy_url: str, key: str) -> str:
    config = {"provider": {"openai": {"options": {"baseURL": openai_base_url(proxy_url), "apiKey": key}}}}
    return json.dumps(config, indent=2) + "\n"


def describe(kind: str, proxy_url: str) -> str:
    """What setup writes, in one line (the key itself is not repeated)."""
    if kind == "codex":
        return (
            f'model_provider = "{PROVIDER_ID}", and [model_providers.{PROVIDER_ID}] with base_url = '
            f'"{codex_base_url(proxy_url)}", wire_api = "responses" and the local key as '
            "experimental_bearer_token"
        )
    return f'provider.openai.options.baseURL = "{openai_base_url(proxy_url)}" and the local key as apiKey'


def snippets(proxy_url: str, key: str) -> dict[str, str]:
    """The exact settings for each client, for the window's Connect clients page."""
    return {"codex": codex_snippet(proxy_url, key), "opencode": opencode_snippet(proxy_url, key)}
