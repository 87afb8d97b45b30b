"""The upstream transport behind a forward proxy: each request goes the way its host calls for.

:func:`upstream_transport` builds what the engine's one upstream client (Codex requests, usage
fetches, token calls) sends through: without a proxy in force, the direct transport alone; with one,
a :class:`ForwardingTransport` that asks :meth:`tray.proxy.egress.Egress.proxy_for` per request and hands
it to the direct transport or to the one through that proxy (an HTTP proxy tunnels https with
``CONNECT`` and forwards http as is; a SOCKS proxy needs httpx's ``socks`` extra). The direct
transport sends the responses stream over codex-pool's own connections
(:class:`~tray.proxy.transport.UpstreamTransport`); the rest, and everything through a proxy, goes
over httpx's, each in a :class:`~tray.proxy.transport.ReclaimingTransport`, so a cancelled request
leaks no connection either way.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping

import httpx

from tray.errors import HttpLibraryError
from tray.proxy.egress import Egress, from_settings, problems, redacted
from tray.proxy.transport import ReclaimingTransport, UpstreamTransport

log = logging.getLogger(__name__)


class ForwardingTransport(httpx.AsyncBaseTransport):
    """``direct`` for hosts that go direct (loopback, ``NO_PROXY``), a proxied transport else."""

    def __init__(self, egress: Egress, direct: httpx.AsyncBaseTransport,
                 proxied: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.egress = egress
        self.direct = direct
        self.proxied = proxied

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        proxy = self.egress.proxy_for(url.scheme, url.host, url.port)
        transport = self.direct if proxy is None else self.proxied[proxy]
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in (self.direct, *self.proxied.values()):
            await transport.aclose()


def upstream_transport(environ: Mapping[str, str], setting: str, inner: httpx.AsyncBaseTransport | None,
                       *, limits: httpx.Limits,
                       verify: ssl.SSLContext | bool = True) -> httpx.AsyncBaseTransport:
    """The transport for the upstream client, through the proxies ``setting`` (``upstream-proxy``) or
    else ``environ`` names; ``inner`` (tests) replaces the direct one."""
    for problem in problems(environ):
        log.warning("Proxy setting: %s", problem)
    egress = from_settings(environ, setting)
    direct: httpx.AsyncBaseTransport = (UpstreamTransport(limits, verify) if inner is None
                                        else ReclaimingTransport(inner))
    if not egress.proxies:
        return direct
    proxied: dict[str, httpx.AsyncBaseTransport] = {}
    for url in egress.proxies:
        try:
            through = httpx.AsyncHTTPTransport(proxy=url, limits=limits, verify=verify, trust_env=False)
        except ImportError as exc:  # socks5:// without socksio
            raise HttpLibraryError(f"The proxy {redacted(url)} is a SOCKS proxy, which needs httpx's socks "
                                   "extra (the socksio package); install codex-pool's dependencies.") from exc
        proxied[url] = ReclaimingTransport(through)
    ways = ", ".join(f"{scheme} via {redacted(url)}" for scheme, url in (("https", egress.https),
                                                                            ("http", egress.http)) if url)
    log.info("Upstream connections go through a proxy (%s, from %s); loopback%s go direct.", ways,
             egress.source, " and NO_PROXY hosts" if egress.no_proxy else "")
    return ForwardingTransport(egress, direct, proxied)
