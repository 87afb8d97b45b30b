"""Local access control for the proxy routes (pure): the local key, the ``Host`` header and the
browser ``Origin``.

Clients prove they are the user's with the local key (``Authorization: Bearer <key>`` or
``x-api-key``). ``Host`` must name the loopback address and our port, so a web page cannot reach the
proxy through a DNS name it controls (DNS rebinding); a browser ``Origin`` must be the proxy's own,
so no other site can drive it from the user's browser. A request with two ``Host`` or two
``Origin`` headers is refused outright: parts that read the first and parts that read the last must
never disagree about where a request comes from.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


@dataclass(frozen=True)
class Denied:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class AccessPolicy:
    port: int
    bind_host: str = "127.0.0.1"
    allow_remote: bool = False

    def allowed_hosts(self) -> set[str]:
        names = set(LOOPBACK_NAMES)
        if self.bind_host not in ("0.0.0.0", "::", ""):
            names.add(self.bind_host.lower())
        return {f"{name}:{self.port}" for name in names}

    def host_ok(self, host: str | None) -> bool:
        if self.allow_remote and self.bind_host in ("0.0.0.0", "::", ""):
            return True  # bound to every interface on purpose: the user chose to accept any name
        if not host:
            return False
        host = host.strip().lower()
        if self.port == 80 and ":" not in host.replace("[::1]", ""):
            host = f"{host}:80"
        return host in self.allowed_hosts()

    def origin_ok(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not a browser request
        origin = origin.strip().lower()
        if not origin.startswith("http://"):
            return False
        return self.host_ok(origin[len("http://") :].rstrip("/"))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent, from ``Authorization: Bearer`` or ``x-api-key``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def check_origin(policy: AccessPolicy, headers: Mapping[str, str]) -> Denied | None:
    """Host and Origin checks only (used by every route, including the management API)."""
    if not policy.host_ok(headers.get("host")):
        return Denied(403, "forbidden_host", "Requests must address the proxy by its loopback address.")
    if not policy.origin_ok(headers.get("origin")):
        return Denied(403, "forbidden_origin", "Cross-site requests to the proxy are not allowed.")
    return None


def check_headers(policy: AccessPolicy, raw: Iterable[tuple[bytes, bytes]]) -> Denied | None:
    """:func:`check_origin` on an ASGI header list, refusing a repeated ``Host`` or ``Origin``."""
    seen: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key in ("host", "origin"):
            if key in seen:
                return Denied(400, "duplicate_header", f"Send exactly one {key.title()} header.")
            seen[key] = value.decode("latin-1")
    return check_origin(policy, seen)


def check_request(policy: AccessPolicy, headers: Mapping[str, str], api_key: str) -> Denied | None:
    """Return why a proxy request is refused, or None when it may go on. Never echoes a key."""
    denied = check_origin(policy, headers)
    if denied is not None:
        return denied
    key = presented_key(headers)
    if key is None:
        return Denied(
            401, "missing_api_key", "Send the codex-pool local key as 'Authorization: Bearer <key>'."
        )
    if not hmac.compare_digest(key.encode(), api_key.encode()):
        return Denied(
            401, "invalid_api_key", "The local key is wrong; 'codex-pool status' shows the right one."
        )
    return None
