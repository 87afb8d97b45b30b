"""The settings' key table and checks (pure): every key of ``config.toml``, what it accepts, its help
text, and :func:`validate`, which turns a parsed file into a :class:`~tray.models.Config` and a list
of :class:`Problem` s.

A bad value is a problem, not an error: that key falls back to its default and every other key
still applies. Keys are kebab-case in the file and snake_case attributes on ``Config``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import urlsplit

from tray.models import Config, Notifications

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]*@")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings, in the words every surface shows.

    ``key`` is the key as in the file (dotted for a switch: ``notifications.quota-low``; empty for
    the file as a whole), ``message`` what is wrong, naming the key and the value found, and
    ``fallback`` the value used instead (``None``: the key is ignored). ``str(problem)`` is the
    whole sentence: ``"port" must be an integer from 0 to 65535 (got "abc"); using 4455``.
    """

    key: str
    message: str
    fallback: object = None

    def __str__(self) -> str:
        if self.fallback is None:
            return f"{self.message} (ignored)"
        return f"{self.message}; using {show(self.fallback)}"


class _Bad(ValueError):
    """A value that does not fit; ``args[0]`` is what it must be ("must be true or false")."""


Check = Callable[[Any], Any]


@dataclass(frozen=True)
class Key:
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
    try:
        parts = urlsplit(value.strip()) if isinstance(value, str) else None
    except ValueError:  # an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise _Bad("must be an http:// or https:// URL without a query")
    return cast(str, value).strip().rstrip("/")


def _proxy(value: Any) -> Any:
    text = value.strip() if isinstance(value, str) else "\0"
    if text.lower() in ("", "direct"):
        return text.lower()
    text = text if "://" in text else f"http://{text}"
    try:
        parts = urlsplit(text)
        fits = (bool(parts.hostname) and parts.scheme.lower() in PROXY_SCHEMES and parts.port != 0
                and parts.path in ("", "/") and "\0" not in text)
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        fits = False
    if not fits:
        raise _Bad('must be "direct" or a proxy URL like http://proxy.example:3128')
    return text


def without_credentials(text: str) -> str:
    """``text`` with the user name and password of any URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1***@", text)


def _host(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise _Bad("must be a host name or IP address")
    return value.strip()


SPEC: tuple[Key, ...] = (
    Key("fast-mode", "fast_mode", _choice("auto", "always", "disabled"),
        'Fast mode sends service_tier "priority" when an account has quota to spare.\n'
        '"auto": only when its quota allows; "always": every request; "disabled": never.\n'
        "A service_tier the client sets itself always wins."),
    Key("fast-mode-bias", "fast_mode_bias", _number(),
        "Shifts the fast-mode gate: positive turns fast mode on more readily, negative less.\n"
        "0.01-0.02 changes it slightly, 0.03-0.05 noticeably."),
    Key("sticky-mode", "sticky_mode", _choice("auto", "always", "disabled"),
        "Keep a session on one account so the provider's prompt cache keeps working.\n"
        '"auto": switch only when another account is clearly better; "always": stay while the\n'
        'account can serve; "disabled": pick the best account for every request.'),
    Key("sticky-strength", "sticky_strength", _number(0),
        'How much better another account must be before "auto" sticky mode switches (>= 0;\n'
        "0 switches on any gain, larger values stay longer)."),
    Key("dormant-touch", "dormant_touch",
        _choice("always", "new-session-only", "disabled", aliases={True: "always", False: "disabled"}),
        "Route a request to an account whose quota window has not started yet, so its timer starts.\n"
        '"always" (even if that moves a sticky session), "new-session-only" (only requests not\n'
        'kept on an account) or "disabled"; true/false mean "always"/"disabled".'),
    Key("host", "host", _host,
        "Address the local proxy listens on. Use 127.0.0.1; anything else needs allow-remote."),
    Key("port", "port", _port, "Port of the local proxy (0 picks a free port each start)."),
    Key("allow-remote", "allow_remote", _boolean,
        "Allow a non-loopback host, exposing the proxy to other machines (they still need the key)."),
    Key("upstream-url", "upstream_url", _url,
        "The ChatGPT backend; the Codex and usage endpoints hang below it. Change only for a gateway.\n"
        "Every account's access token is sent here, so only config.toml sets it (not the window),\n"
        "and a change takes effect when codex-pool restarts."),
    Key("auth-url", "auth_url", _url,
        "The OpenAI sign-in server (authorize, token and device-code endpoints). Like upstream-url,\n"
        "set only in config.toml, from the next start."),
    Key("upstream-proxy", "upstream_proxy", _proxy,
        'Forward proxy for the upstream, usage and token calls: "" uses HTTPS_PROXY/HTTP_PROXY/ALL_PROXY\n'
        '(and NO_PROXY), "direct" none, or a URL (http://, https://, socks5://). From the next start.'),
    Key("max-body-mb", "max_body_mb", _number(0, above=True),
        "Largest request body the proxy accepts, in MB; bigger requests get 413."),
    Key("log-level", "log_level", _choice("debug", "info", "warning", "error"),
        'How much goes to the log file: "debug", "info", "warning" or "error".'),
    Key("quota-low-percent", "quota_low_percent", _number(0, 100),
        "The quota-low notification fires when an account has less than this % left in a window."),
)
NOTIFICATION_SPEC: tuple[Key, ...] = (
    Key("notifications.config-invalid", "config_invalid", _boolean, "This file has a bad value."),
    Key("notifications.needs-login", "needs_login", _boolean, "An account needs a new sign-in."),
    Key("notifications.pool-exhausted", "pool_exhausted", _boolean,
        "Every account is out of quota (with the soonest reset)."),
    Key("notifications.pool-available", "pool_available", _boolean, "An account is usable again."),
    Key("notifications.quota-low", "quota_low", _boolean, "An account's quota is under quota-low-percent."),
    Key("notifications.forecast", "forecast", _boolean,
        "At the current pace the pool runs out before its next reset."),
)
KEYS: tuple[str, ...] = tuple(k.name for k in SPEC + NOTIFICATION_SPEC)
"""Every documented key; the notification switches are dotted (``notifications.needs-login``)."""
BY_NAME: dict[str, Key] = {k.name: k for k in SPEC + NOTIFICATION_SPEC}
_TOP: dict[str, Key] = {k.name: k for k in SPEC}


def value_of(config: Config, name: str) -> object:
    """The value ``config`` holds for the documented key ``name`` (``notifications.quota-low`` too)."""
    key = BY_NAME[name]
    return getattr(config.notifications if name.startswith("notifications.") else config, key.attr)


def show(value: object) -> str:
    """``value`` as a problem names it: TOML-like, a whole number without ``.0``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = without_credentials(value)  # a proxy URL's password stays out of every message
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Config):
        return "the defaults for every key"
    if isinstance(value, Notifications):
        return "the defaults"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def validate(mapping: Mapping[str, Any]) -> tuple[Config, list[Problem]]:
    """Turn a parsed TOML mapping into a :class:`Config` and its problems (pure).

    Each bad key falls back to its default alone; unknown keys are reported and ignored. A
    non-loopback ``host`` without ``allow-remote`` is a problem of ``host``.
    """
    defaults = Config()
    values: dict[str, Any] = {}
    problems: list[Problem] = []

    def take(key: Key, raw: Any, default: Any, into: dict[str, Any]) -> None:
        try:
            into[key.attr] = key.check(raw)
        except _Bad as bad:
            problems.append(Problem(key.name, f'"{key.name}" {bad.args[0]} (got {show(raw)})', default))

    for name, raw in mapping.items():
        if name in _TOP:
            take(_TOP[name], raw, getattr(defaults, _TOP[name].attr), values)
        elif name != "notifications":
            problems.append(Problem(name, f'unknown key "{name}"'))
    switches: dict[str, Any] = {}
    table = mapping.get("notifications", {})
    if not isinstance(table, Mapping):
        problems.append(Problem("notifications", '"notifications" must be a table of true/false switches '
                                                 f"(got {show(table)})", defaults.notifications))
        table = {}
    for name, raw in table.items():
        key = BY_NAME.get(f"notifications.{name}")
        if key is not None:
            take(key, raw, getattr(defaults.notifications, key.attr), switches)
        else:
            problems.append(Problem(f"notifications.{name}", f'unknown key "notifications.{name}"'))
    config = replace(defaults, **values, notifications=replace(defaults.notifications, **switches))
    if not config.allow_remote and not is_loopback(config.host):
        problems.append(Problem("host", f'"host" {show(config.host)} is not a loopback address and '
                                        "allow-remote is false", defaults.host))
        config = replace(config, host=defaults.host)
    return config, problems


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
