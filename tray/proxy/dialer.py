"""Opening the upstream Responses WebSocket with one account's credentials (the ``websockets``
library; no framing of our own).

:func:`dial` returns an open :class:`Upstream`, or the backend's refusal of the upgrade as a
:class:`Refused` (status, headers, body: a 401, a usage-limit 429, a Cloudflare 403...). A socket that
could not be opened at all raises :class:`tray.errors.UpstreamError` naming the cause, never a
header or token. The 101's headers that Codex CLI reads (``x-codex-turn-state``, ``openai-model``,
``x-models-etag``, ``x-reasoning-included``) are kept for the client's own 101.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from tray.errors import UpstreamError
from tray.proxy.shaping import client_headers, redact

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 15.0  # seconds for the upgrade, as long as Codex CLI waits for its own
PING_INTERVAL = 20.0  # seconds between our pings upstream; a socket silent for another 20 s is dead
MAX_MESSAGE = 64 * 1024 * 1024  # one upstream event (a long answer's response.completed holds it all)
MAX_QUEUE = 16  # upstream messages read ahead of a slow client before reading pauses
# Headers of the client's upgrade that belong to its own connection to us; the library sends its own.
DIAL_DROPS = ("sec-websocket-", "accept-encoding")
# Headers of the backend's 101 that describe its connection to us, not the answer.
ANSWER_DROPS = ("sec-websocket-", "upgrade")


@dataclass(frozen=True)
class Refused:
    """The backend answered the upgrade with an error status instead of 101."""

    status: int
    headers: dict[str, str]  # names lower-case
    body: bytes


@dataclass
class Upstream:
    """One open upstream socket and the 101's headers that may go to the client."""

    conn: ClientConnection
    headers: list[tuple[str, str]]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            await self.conn.close(code, reason)
        except Exception as exc:  # an upstream that is already gone has nothing left to close
            log.debug("closing the upstream socket: %s", type(exc).__name__)


def socket_url(upstream_url: str, path: str, query: str = "") -> str:
    """``https://host/backend-api`` + ``/codex/responses`` → ``wss://host/backend-api/codex/responses``."""
    base = upstream_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    return base + path + (f"?{query}" if query else "")


def dial_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers if not n.lower().startswith(DIAL_DROPS)]


def answer_headers(headers: Iterable[tuple[str, str]], secret: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in client_headers(headers, secret) if not n.startswith(ANSWER_DROPS)]


async def dial(url: str, headers: list[tuple[str, str]], secret: str, *, proxy: str | None = None,
               open_timeout: float = OPEN_TIMEOUT) -> Upstream | Refused:
    """Open ``url`` with ``headers`` (the account's credentials among them; ``secret`` is its access
    token, redacted from anything passed on), through the forward ``proxy`` when one is given (an
    HTTP proxy by CONNECT; SOCKS needs the python-socks package)."""
    try:
        conn = await connect(
            url,
            additional_headers=dial_headers(headers),
            user_agent_header=None,  # the client's own User-Agent is among the headers
            compression="deflate",
            open_timeout=open_timeout,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_INTERVAL,
            close_timeout=5.0,
            max_size=MAX_MESSAGE,
            max_queue=MAX_QUEUE,
            proxy=proxy,  # tray/proxy/egress.py decided, as for the HTTP client (never the library)
        )
    except InvalidStatus as exc:
        response = exc.response
        found = dict(answer_headers(response.headers.raw_items(), secret))
        return Refused(response.status_code, found, redact(bytes(response.body or b""), secret))
    except ImportError as exc:  # a SOCKS proxy without python-socks
        raise UpstreamError(f"the proxy needs a package codex-pool lacks ({exc.name})") from exc
    except (InvalidURI, ValueError) as exc:
        raise UpstreamError(f"bad upstream WebSocket address: {type(exc).__name__}") from exc
    except TimeoutError as exc:
        raise UpstreamError("the upstream WebSocket upgrade timed out") from exc
    except (OSError, InvalidHandshake, asyncio.IncompleteReadError, EOFError) as exc:
        raise UpstreamError(f"could not open the upstream WebSocket ({type(exc).__name__})") from exc
    return Upstream(conn, answer_headers(conn.response.headers.raw_items() if conn.response else [], secret))
