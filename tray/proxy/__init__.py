"""The proxy's request path: the ASGI routes and local access checks, the request as read once, the
pipeline that tries accounts in the planned order, one attempt per account, the relay of its
answer, pooled answers when nobody can serve, and the upstream transport and limits.
"""

from __future__ import annotations

from tray.proxy.access import AccessPolicy, check_headers
from tray.proxy.body import read_limited
from tray.proxy.forwarding import upstream_transport
from tray.proxy.limits import Limits, connection_cap, harden_process, protocol_for
from tray.proxy.pipeline import Pipeline
from tray.proxy.routes import OriginGuard, ProxyRoutes, build_app
from tray.proxy.transport import ReclaimingTransport

__all__ = [
    "AccessPolicy",
    "Limits",
    "OriginGuard",
    "Pipeline",
    "ProxyRoutes",
    "ReclaimingTransport",
    "build_app",
    "check_headers",
    "connection_cap",
    "harden_process",
    "protocol_for",
    "read_limited",
    "upstream_transport",
]
