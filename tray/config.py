"""``config.toml``: reading, validating, rendering and saving codex-pool's settings.

Every key is optional. A bad value is a *problem*, not an error: that key falls back to its default,
every other key still applies, and the caller shows the problems (a desktop notification in the
tray, stderr headless). Only :func:`save_config` raises: a save the user asked for must not write a
bad value. Keys are kebab-case in the file and snake_case attributes on :class:`Config`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from tray.errors import ConfigError
from tray.models import Config

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]*@")


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    problems: tuple[str, ...]
    path: Path


class _Bad(ValueError):
    """A value that does not fit; ``args[0]`` is what it must be ("must be true or false")."""


Check = Callable[[Any], Any]


@dataclass(frozen=True)
class _Key:
    name: str  # as in the file; dotted for the notifications table
    attr: str
    check: Check
    help: str  # the comment written above the key


def _choice(*allowed: str, aliases: Mapping[bool, str] | None = None) -> Check:
    words = ", ".join(f'"{a}"' for a in allowed[:-1]) + f' or "{allowed[-1]}"'

    def check(value: Any) -> Any:
        if isinstance(value, bool) and aliases is not None:
            return aliases[value]
        if isinstance(value, str) and value.strip().lower() in allowed:
            return value.strip().lower()
        raise _Bad(f"must be {words}")

    return check


def _number(low: float | None = None, high: float | None = None, *, above: bool = False) -> Check:
    if low is not None and high is not None:
        words = f"a number from {low:g} to {high:g}"
    elif low is not None:
        words = f"a number greater than {low:g}" if above else f"a number >= {low:g}"
    else:
        words = "a finite number"

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _Bad(f"must be {words}")
        if low is not None and (value <= low if above else value < low):
            raise _Bad(f"must be {words}")
        if high is not None and value > high:
            raise _Bad(f"must be {words}")
        return float(value)

    return check


def _port(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise _Bad("must be an integer from 0 to 65535")
    return value


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _url(value: Any) -> Any:
    parts = urlsplit(value.strip()) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise _Bad("must be an http:// or https:// URL without a query")
    return cast(str, value).strip().rstrip("/")


def _proxy(value: Any) -> Any:
    text = value.strip() if isinstance(value, str) else "\0"
    if text.lower() in ("", "direct"):
        return text.lower()
    text = text if "://" in text else f"http://{text}"
    parts = urlsplit(text)
    try:
        fits = bool(parts.hostname) and parts.scheme.lower() in PROXY_SCHEMES and parts.port != 0
    except ValueError:  # a port out of range
        fits = False
    if not fits or parts.path not in ("", "/") or "\0" in text:
        raise _Bad('must be "direct" or a proxy URL like http://proxy.example:3128')
    return text


def without_credentials(text: str) -> str:
    """``text`` with the user name and password of any URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1***@", text)


def _host(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise _Bad("must be a host name or IP address")
    return value.strip()


SPEC: tuple[_Key, ...] = (
    _Key("fast-mode", "fast_mode", _choice("auto", "always", "disabled"),
         'Fast mode sends service_tier "priority" when an account has quota to spare.\n'
         '"auto": only when its quota allows; "always": every request; "disabled": never.\n'
         "A service_tier the client sets itself always wins."),
    _Key("fast-mode-bias", "fast_mode_bias", _number(),
         "Shifts the fast-mode gate: positive turns fast mode on more readily, negative less.\n"
         "0.01-0.02 changes it slightly, 0.03-0.05 noticeably."),
    _Key("sticky-mode", "sticky_mode", _choice("auto", "always", "disabled"),
         "Keep a session on one account so the provider's prompt cache keeps working.\n"
         '"auto": switch only when another account is clearly better; "always": stay while the\n'
         'account can serve; "disabled": pick the best account for every request.'),
    _Key("sticky-strength", "sticky_strength", _number(0),
         'How much better another account must be before "auto" sticky mode switches (>= 0;\n'
         "0 switches on any gain, larger values stay longer)."),
    _Key("dormant-touch", "dormant_touch",
         _choice("always", "new-session-only", "disabled", aliases={True: "always", False: "disabled"}),
         "Route a request to an account whose quota window has not started yet, so its timer starts.\n"
         '"always" (even if that moves a sticky session), "new-session-only" (only requests not\n'
         'kept on an account) or "disabled"; true/false mean "always"/"disabled".'),
    _Key("host", "host", _host,
         "Address the local proxy listens on. Use 127.0.0.1; anything else needs allow-remote."),
    _Key("port", "port", _port, "Port of the local proxy (0 picks a free port each start)."),
    _Key("allow-remote", "allow_remote", _boolean,
         "Allow a non-loopback host, exposing the proxy to other machines (they still need the key)."),
    _Key("upstream-url", "upstream_url", _url,
         "The ChatGPT backend; the Codex and usage endpoints hang below it. Change only for a gateway.\n"
         "Every account's access token is sent here, so only config.toml sets it (not the window),\n"
         "and a change takes effect when codex-pool restarts."),
    _Key("auth-url", "auth_url", _url,
         "The OpenAI sign-in server (authorize, token and device-code endpoints). Like upstream-url,\n"
         "set only in config.toml, from the next start."),
    _Key("upstream-proxy", "upstream_proxy", _proxy,
         'Forward proxy for the upstream, usage and token calls: "" uses HTTPS_PROXY/HTTP_PROXY/ALL_PROXY\n'
         '(and NO_PROXY), "direct" none, or a URL (http://, https://, socks5://). From the next start.'),
    _Key("max-body-mb", "max_body_mb", _number(0, above=True),
         "Largest request body the proxy accepts, in MB; bigger requests get 413."),
    _Key("log-level", "log_level", _choice("debug", "info", "warning", "error"),
         'How much goes to the log file: "debug", "info", "warning" or "error".'),
    _Key("quota-low-percent", "quota_low_percent", _number(0, 100),
         "The quota-low notification fires when an account has less than this % left in a window."),
)
NOTIFICATION_SPEC: tuple[_Key, ...] = (
    _Key("notifications.config-invalid", "config_invalid", _boolean, "This file has a bad value."),
    _Key("notifications.needs-login", "needs_login", _boolean, "An account needs a new sign-in."),
    _Key("notifications.pool-exhausted", "pool_exhausted", _boolean,
         "Every account is out of quota (with the soonest reset)."),
    _Key("notifications.pool-available", "pool_available", _boolean, "An account is usable again."),
    _Key("notifications.quota-low", "quota_low", _boolean, "An account's quota is under quota-low-percent."),
    _Key("notifications.forecast", "forecast", _boolean,
         "At the current pace the pool runs out before its next reset."),
)
KEYS: tuple[str, ...] = tuple(k.name for k in SPEC + NOTIFICATION_SPEC)
"""Every documented key; the notification switches are dotted (``notifications.needs-login``)."""


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = without_credentials(value)  # a proxy URL's password stays out of every message
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _validate(mapping: Mapping[str, Any]) -> tuple[Config, list[tuple[str, str]]]:
    """Like :func:`validate`, with each problem tagged by the key it is about."""
    defaults = Config()
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []

    def take(key: _Key, raw: Any, default: Any, into: dict[str, Any]) -> None:
        try:
            into[key.attr] = key.check(raw)
        except _Bad as bad:
            got, use = _show(raw), _show(default)
            problems.append((key.name, f'"{key.name}" {bad.args[0]} (got {got}); using {use}'))

    known = {k.name: k for k in SPEC}
    for name, raw in mapping.items():
        if name in known:
            take(known[name], raw, getattr(defaults, known[name].attr), values)
        elif name != "notifications":
            problems.append((name, f'unknown key "{name}" (ignored)'))
    switches: dict[str, Any] = {}
    table = mapping.get("notifications", {})
    if not isinstance(table, Mapping):
        problems.append(("notifications", f'"notifications" must be a table of true/false switches '
                                          f"(got {_show(table)}); using the defaults"))
        table = {}
    by_short = {k.name.split(".", 1)[1]: k for k in NOTIFICATION_SPEC}
    for name, raw in table.items():
        if name in by_short:
            take(by_short[name], raw, getattr(defaults.notifications, by_short[name].attr), switches)
        else:
            problems.append((f"notifications.{name}", f'unknown key "notifications.{name}" (ignored)'))
    config = replace(defaults, **values, notifications=replace(defaults.notifications, **switches))
    if not config.allow_remote and not is_loopback(config.host):
        problems.append(("host", f'"host" {_show(config.host)} is not a loopback address and allow-remote is '
                                 f'false; using "{defaults.host}"'))
        config = replace(config, host=defaults.host)
    return config, problems


def validate(mapping: Mapping[str, Any]) -> tuple[Config, list[str]]:
    """Turn a parsed TOML mapping into a :class:`Config` and a list of problems (pure).

    Each bad key falls back to its default alone; unknown keys are reported and ignored.
    """
    config, tagged = _validate(mapping)
    return config, [message for _, message in tagged]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_config(path: Path) -> LoadedConfig:
    """Read ``path``; write a commented default file first when it is missing.

    Never raises for bad content: an unreadable or invalid file gives all defaults and one problem
    naming the file, and the file is left untouched.
    """
    try:
        data = _read(path)
    except FileNotFoundError:
        try:
            _write(path, render_config(Config()))
        except OSError as exc:
            problem = f"Could not create {path}: {exc.strerror or exc}; using defaults"
            return LoadedConfig(Config(), (problem,), path)
        return LoadedConfig(Config(), (), path)
    except ConfigError as exc:
        return LoadedConfig(Config(), (f"{exc}; using defaults for every key",), path)
    config, problems = validate(data)
    return LoadedConfig(config, tuple(problems), path)


def save_config(path: Path, updates: Mapping[str, Any]) -> LoadedConfig:
    """Apply ``updates`` (kebab-case keys; ``notifications`` as a table or dotted keys) to the file.

    Validates first: if an updated key is bad, raises :class:`ConfigError` listing every problem
    and writes nothing. Otherwise writes the whole file atomically, keeping the user's other values
    (and any keys codex-pool does not know), and returns the result as :func:`load_config` would.
    """
    try:
        current = _read(path)
    except FileNotFoundError:
        current = {}
    merged: dict[str, Any] = dict(current)
    table = current.get("notifications")
    notifications: dict[str, Any] = dict(table) if isinstance(table, dict) else {}
    touched: set[str] = set()
    for name, value in updates.items():
        if name == "notifications":
            if not isinstance(value, Mapping):
                raise ConfigError(f'Not saved: "notifications" must be a table of true/false switches '
                                  f"(got {_show(value)})")
            notifications.update(value)
            touched |= {f"notifications.{k}" for k in value} | {"notifications"}
        elif name.startswith("notifications."):
            notifications[name.split(".", 1)[1]] = value
            touched.add(name)
        else:
            merged[name] = value
            touched.add(name)
    if "notifications" in current or notifications:
        merged["notifications"] = notifications
    if "allow-remote" in touched:
        touched.add("host")
    config, tagged = _validate(merged)
    bad = [message for key, message in tagged if key in touched]
    if bad:
        raise ConfigError("Not saved: " + "; ".join(bad))
    known = set(KEYS) | {"notifications"}
    extras = {k: v for k, v in merged.items() if k not in known}
    extra_switches = {k: v for k, v in notifications.items() if f"notifications.{k}" not in known}
    try:
        _write(path, render_config(config, extras=extras, extra_notifications=extra_switches))
    except OSError as exc:
        raise ConfigError(f"Could not write {path}: {exc.strerror or exc}") from exc
    return LoadedConfig(config, tuple(m for _, m in tagged), path)


def render_config(
    config: Config,
    *,
    extras: Mapping[str, Any] | None = None,
    extra_notifications: Mapping[str, Any] | None = None,
) -> str:
    """The commented TOML text for ``config`` (``extras``: unknown keys kept as they were)."""
    import tomli_w

    def line(name: str, value: Any) -> str:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return tomli_w.dumps({name: value}).strip()

    out = ["# codex-pool settings. Every key is optional; delete a line to get its default.",
           "# A bad value falls back to its default and is reported. Docs: docs/configuration.md", ""]
    for key in SPEC:
        out += [f"# {text}" for text in key.help.splitlines()]
        out += [line(key.name, getattr(config, key.attr)), ""]
    if extras:
        out += ["# Keys this version of codex-pool does not know (kept as you wrote them):"]
        out += [tomli_w.dumps(dict(extras)).strip(), ""]
    out += ["# Desktop notifications, each on (true) or off (false).", "[notifications]"]
    for key in NOTIFICATION_SPEC:
        short = key.name.split(".", 1)[1]
        out += [f"# {key.help}", line(short, getattr(config.notifications, key.attr))]
    if extra_notifications:
        out += ["# Not known to this version:", tomli_w.dumps(dict(extra_notifications)).strip()]
    return "\n".join(out) + "\n"


def _read(path: Path) -> dict[str, Any]:
    """The parsed file; :class:`ConfigError` naming the file when it cannot be read or parsed."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"Could not read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML (it is not UTF-8 text)") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc})") from exc


def _write(path: Path, text: str) -> None:
    """Write atomically (temp file + rename), keeping an existing file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise

