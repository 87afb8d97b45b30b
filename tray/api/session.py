"""The management API's entrances that come before any credential (see :mod:`tray.api.sessions`):

* ``POST /api/session`` ``{"code"}``: trade a one-time window code for a session token;
* ``POST /api/owner/hello`` ``{"nonce"}``: the proxy proves it is this pool's (``{"nonce", "proof"}``);
* ``POST /api/owner/code`` ``{"nonce", "proof"}``: the owner's CLI proves it can read the owner's
  files and is given a window code (``{"code"}``).

They still pass the guard's Host, Origin and cross-site checks. A wrong code or proof is a 401
that says nothing about why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tray.api.base import BadRequest, error, json_body, ok
from tray.api.sessions import CODE_TTL, SESSION_IDLE, Sessions, client_proof, same, server_proof

OPEN_PATHS = frozenset({"/session", "/owner/hello", "/owner/code"})
NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or len(value) > 256:
        raise BadRequest(f"Send '{name}' as text.")
    return value


class SessionApi:
    def __init__(self, sessions: Sessions, key: Callable[[], str], port: Callable[[], int]) -> None:
        self.sessions = sessions
        self.key = key
        self.port = port

    async def session(self, request: Request) -> Response:
        session = self.sessions.redeem(_text(await json_body(request), "code"))
        if session is None:
            return error(401, "This window link has expired or was used already: open the window again "
                              "from the tray menu or with 'codex-pool status'.")
        return ok({"session": session, "idle_timeout": SESSION_IDLE})

    async def hello(self, request: Request) -> Response:
        nonce = _text(await json_body(request), "nonce")
        if not NONCE.fullmatch(nonce):
            raise BadRequest("'nonce' must be 16 to 128 URL-safe characters.")
        mine = self.sessions.challenge(nonce)
        return ok({"nonce": mine, "proof": server_proof(self.key(), self.port(), nonce, mine)})

    async def code(self, request: Request) -> Response:
        body = await json_body(request)
        mine, proof = _text(body, "nonce"), _text(body, "proof")
        theirs = self.sessions.answer(mine)
        if theirs is None or not same(proof, client_proof(self.key(), self.port(), theirs, mine)):
            return error(401, "The owner's proof did not match.")
        return ok({"code": self.sessions.mint(), "expires_in": CODE_TTL})


def session_routes(sessions: Sessions, key: Callable[[], str], port: Callable[[], int]) -> list[Route]:
    api = SessionApi(sessions, key, port)
    return [
        Route("/session", api.session, methods=["POST"]),
        Route("/owner/hello", api.hello, methods=["POST"]),
        Route("/owner/code", api.code, methods=["POST"]),
    ]
