"""Which forward proxy (if any) each upstream connection goes through (pure).

Behind a corporate proxy the upstream, usage and token clients honour the same settings as Codex
CLI and curl: ``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http URLs, ``ALL_PROXY`` for both
when the scheme's own is not set (an ``http://`` or ``https://`` proxy, or ``socks5://`` /
``socks5h://``), lower-case names first; ``NO_PROXY`` lists hosts that go direct (``*`` for all, a
name also covers its subdomains, ``.name`` only them, IP addresses and CIDR ranges, an optional
``:port``). ``upstream-proxy`` in config.toml overrides the environment: a proxy URL for every
upstream connection, or ``"direct"`` for none (``NO_PROXY`` still applies to a URL).

Loopback hosts never go through a proxy, whatever the settings say. :func:`redacted` is the only way a
proxy URL reaches a log or a message: its user name and password never do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DIRECT = "direct"
SCHEMES = ("http", "https", "socks5", "socks5h")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class BadProxy(ValueError):
    """A proxy setting that is not a usable URL; the message never holds its credentials."""


@dataclass(frozen=True)
class Egress:
    """The proxies in force: one per upstream scheme (``None``: direct), and the hosts exempt."""

    http: str | None = None
    https: str | None = None
    no_proxy: tuple[str, ...] = ()
    source: str = ""  # where the settings came from, for the log line ("HTTPS_PROXY", "upstream-proxy")

    @property
    def proxies(self) -> tuple[str, ...]:
        """Each distinct proxy URL in use."""
        return tuple(dict.fromkeys(p for p in (self.https, self.http) if p))

    def proxy_for(self, scheme: str, host: str, port: int | None = None) -> str | None:
        """The proxy a connection to ``scheme://host:port`` goes through, or ``None`` (direct)."""
        proxy = self.https if scheme == "https" else self.http if scheme == "http" else None
        if proxy is None or is_loopback(host) or exempt(self.no_proxy, host, port):
            return None
        return proxy


def check(value: str) -> str:
    """``value`` as a proxy URL to use (stripped), ``"direct"``, or ``""``; :class:`BadProxy` else."""
    text = value.strip()
    if text.lower() in ("", DIRECT):
        return text.lower()
    try:
        parts = urlsplit(text if "://" in text else f"http://{text}")
        fits = (parts.scheme.lower() in SCHEMES and bool(parts.hostname) and parts.path in ("", "/")
                and parts.port != 0)
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        fits = False
    if not fits:
        raise BadProxy('must be "direct" or a proxy URL like http://proxy.example:3128')
    return text if "://" in text else f"http://{text}"


def from_settings(environ: Mapping[str, str], setting: str = "") -> Egress:
    """The proxies for the upstream clients: ``setting`` (config.toml's ``upstream-proxy``) when
    set, else the environment. A variable holding a bad URL is ignored (:func:`problems` says so)."""
    no_proxy = tuple(h.strip().lower() for h in _env(environ, "no_proxy").split(",") if h.strip())
    chosen = check(setting) if setting else ""
    if chosen == DIRECT:
        return Egress(source="upstream-proxy")
    if chosen:
        return Egress(http=chosen, https=chosen, no_proxy=no_proxy, source="upstream-proxy")
    every = _usable(_env(environ, "all_proxy"))
    https, http = _usable(_env(environ, "https_proxy")), _usable(_env(environ, "http_proxy"))
    names = [name for name, value in (("HTTPS_PROXY", https), ("HTTP_PROXY", http), ("ALL_PROXY", every))
             if value]
    return Egress(http=http or every, https=https or every, no_proxy=no_proxy, source=", ".join(names))


def problems(environ: Mapping[str, str]) -> list[str]:
    """Proxy variables that are set but unusable (so ignored), described without credentials."""
    found = []
    for name in ("https_proxy", "http_proxy", "all_proxy"):
        value = _env(environ, name)
        try:
            check(value)
        except BadProxy as exc:
            found.append(f"{name.upper()} {exc} (got {redacted(value)}); ignored")
    return found


def redacted(url: str) -> str:
    """``url`` with any user name and password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exempt(no_proxy: tuple[str, ...], host: str, port: int | None = None) -> bool:
    """Whether ``NO_PROXY`` (as a list of entries) sends ``host`` direct."""
    name = host.strip("[]").lower().rstrip(".")
    for entry in no_proxy:
        if entry == "*":
            return True
        pattern, want_port = _split_port(entry)
        if want_port is not None and port is not None and want_port != port:
            continue
        if "/" in pattern:
            try:
                if ipaddress.ip_address(name) in ipaddress.ip_network(pattern, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if pattern.startswith("*."):
            pattern = pattern[1:]
        if pattern.startswith("."):
            if name.endswith(pattern):
                return True
        elif name == pattern or name.endswith("." + pattern):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):  # [::1]:8080
        address, _, rest = entry[1:].partition("]")
        return address, int(rest[1:]) if rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def _env(environ: Mapping[str, str], name: str) -> str:
    """A proxy variable, the lower-case spelling first (as curl and Codex CLI read it)."""
    return (environ.get(name) or environ.get(name.upper()) or "").strip()


def _usable(value: str) -> str | None:
    try:
        checked = check(value)
    except BadProxy:
        return None
    return checked if checked and checked != DIRECT else None
