"""A fake auth.openai.com for tests: authorize, token (code + refresh grants), device authorization.

Refresh tokens rotate and are single use, like the real ones: presenting a consumed token answers
400 ``{"error": "refresh_token_reused"}``, is counted in ``reuse_attempts`` and revokes the token's
whole family (the live successor too), as an OAuth server that detects reuse may do.

It is no kinder than the real server about time: a grant is **redeemed when the request arrives**,
before the endpoint decides how long to take or whether to fail. A client that hangs up while the
answer is delayed (``token_delay``) has still spent its refresh token. Transient faults come in
two kinds: *refused before redemption* (``refresh_failures``, ``fail_all_refreshes``,
``token_faults(rate_transient=...)``: the token stays live) and *failed after redemption*
(``failures_after_redemption``, ``token_faults(rate_after_redemption=...)``: the token rotated, the
client gets a 5xx and never sees the new tokens). Knobs and counters are plain attributes so any
test (login, refresh, proxy, reliability) can drive and inspect it::

    fake = FakeAuth()
    with serving(fake.app) as server:      # tests.fakes.runner
        tokens = fake.issue()              # a live token set for fake.user
        fake.token_delay = 5.0             # slow answers (the grant is redeemed at once)
        fake.refresh_failures.append((503, {"error": "overloaded"}))   # next refresh refused: 503
        fake.failures_after_redemption.append((502, {"error": "bad gateway"}))  # rotated, then 502
        fake.token_faults(rate_transient=0.1, seed=1)  # reliability mode: random 5xx/429 refusals
        fake.revoke_account("acc-1")       # every later refresh for that account: invalid_grant
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.jwt import account_claims, make_jwt
from tray.models import TokenSet

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"


@dataclass(frozen=True)
class FakeUser:
    account_id: str = "acc-1"
    subject: str = "user-1"
    email: str | None = "one@example.com"
    plan: str = "plus"


@dataclass
class _Code:
    user: FakeUser
    challenge: str | None
    redirect_uri: str


@dataclass
class _Device:
    user_code: str
    approved_as: FakeUser | None = None
    denied: bool = False
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(32))


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class FakeAuth:
    def __init__(self, clock: Callable[[], float] = time.time, expires_in: float = 3600) -> None:
        self.clock = clock
        self.expires_in = expires_in
        self.user = FakeUser()  # who "signs in" at /oauth/authorize and approves device codes
        # knobs
        self.token_delay = 0.0  # seconds the token endpoint takes to answer (after redeeming)
        # Refusals before redemption, popped per refresh grant: (status, json body); the token stays live.
        self.refresh_failures: list[tuple[int, Any]] = []
        self.fail_all_refreshes: tuple[int, Any] | None = None
        # Failures after redemption, popped per successful rotation: the client gets this instead.
        self.failures_after_redemption: list[tuple[int, Any]] = []
        self.before_refresh: Callable[[], None] | None = None  # runs as each refresh grant arrives
        self.omit_refresh_token = False  # answer refresh grants without a new refresh token
        self.transient_rate = 0.0  # share of refresh grants refused with a random 5xx/429 (token_faults)
        self.after_redemption_rate = 0.0  # share of rotations answered with a random 5xx (token_faults)
        self.revoked_accounts: set[str] = set()  # account ids whose refresh grants fail permanently
        self._fault_rng = random.Random(0)
        self.authorize_error: str | None = None  # redirect back with ?error=... instead of a code
        self.device_interval = 1
        self.device_expires_in = 900
        # counters
        self.refresh_grants = 0  # successful refresh grants
        self.code_grants = 0  # successful authorization_code grants
        self.reuse_attempts = 0  # consumed refresh tokens presented again
        self.refresh_attempts = 0  # every refresh grant request received
        self.in_flight = 0  # token requests currently being answered
        self.abandoned = 0  # token requests whose client went away during token_delay (already redeemed)
        self.lost_rotations = 0  # rotations whose new tokens never reached the client (5xx or hang-up)
        self.device_polls = 0
        self.transient_failures = 0  # refresh grants refused with a transient fault (token_faults)
        self.failed_after_redemption = 0  # rotations answered with a 5xx instead of the tokens
        self.permanent_failures = 0  # refresh grants refused because the account was revoked
        # state
        self.live: dict[str, FakeUser] = {}
        self.consumed: set[str] = set()
        self.family: dict[str, int] = {}  # refresh token -> the login it descends from
        self.codes: dict[str, _Code] = {}
        self.devices: dict[str, _Device] = {}
        self._serial = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/oauth/authorize", self._authorize, methods=["GET"]),
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/api/accounts/deviceauth/usercode", self._device_usercode, methods=["POST"]),
                Route("/api/accounts/deviceauth/token", self._device_token, methods=["POST"]),
            ]
        )

    # --- helpers for tests -------------------------------------------------------------------

    def issue(self, user: FakeUser | None = None, expires_in: float | None = None) -> dict[str, Any]:
        """Mint a live token set (the JSON a token endpoint returns) for ``user``."""
        user = user or self.user
        lifetime = self.expires_in if expires_in is None else expires_in
        now = self.clock()
        serial = next(self._serial)
        claims = account_claims(user.account_id, user.subject, user.email, user.plan, lifetime, now)
        access = make_jwt({**claims, "jti": f"a{serial}"})
        id_token = make_jwt({**claims, "aud": CLIENT_ID, "jti": f"i{serial}"})
        refresh = f"rt_{serial}_{secrets.token_urlsafe(16)}"
        self.live[refresh] = user
        self.family[refresh] = serial  # a new login; a rotation overwrites this with its parent's
        return {
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "expires_in": lifetime,
            "token_type": "Bearer",
        }

    def token_set(self, user: FakeUser | None = None, expires_in: float | None = None) -> TokenSet:
        body = self.issue(user, expires_in)
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            id_token=body["id_token"],
            expires_at=self.clock() + body["expires_in"],
        )

    def approve(self, user_code: str, user: FakeUser | None = None) -> None:
        for device in self.devices.values():
            if device.user_code == user_code:
                device.approved_as = user or self.user
                return
        raise KeyError(user_code)

    def deny(self, user_code: str) -> None:
        for device in self.devices.values():
            if device.user_code == user_code:
                device.denied = True

    def revoke(self, refresh_token: str) -> None:
        self.live.pop(refresh_token, None)

    def revoke_account(self, account_id: str) -> None:
        """The login of ``account_id`` is gone for good (like a password change): its refresh
        tokens, current and future, are answered ``invalid_grant``."""
        self.revoked_accounts.add(account_id)

    def token_faults(
        self, *, rate_transient: float = 0.0, rate_after_redemption: float = 0.0, seed: int = 0
    ) -> None:
        """Refuse ``rate_transient`` of refresh grants with a transient failure (503, 500 or 429,
        chosen by a seeded generator) before looking at the token, so the token stays live; answer
        ``rate_after_redemption`` of successful rotations with a 500/502/503 after rotating, so the
        client never sees its new tokens."""
        for rate in (rate_transient, rate_after_redemption):
            if not 0.0 <= rate <= 1.0:
                raise ValueError("fault rates must be between 0 and 1")
        self.transient_rate = rate_transient
        self.after_redemption_rate = rate_after_redemption
        self._fault_rng = random.Random(seed)

    # --- routes ------------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        redirect = q.get("redirect_uri", "")
        problems = [
            name
            for name, ok in (
                ("client_id", q.get("client_id") == CLIENT_ID),
                ("response_type", q.get("response_type") == "code"),
                ("code_challenge_method", q.get("code_challenge_method") == "S256"),
                ("code_challenge", bool(q.get("code_challenge"))),
                ("redirect_uri", redirect.startswith("http://localhost:")),
                ("state", bool(q.get("state"))),
            )
            if not ok
        ]
        if problems:
            return JSONResponse({"error": "invalid_request", "bad": problems}, status_code=400)
        if self.authorize_error:
            params = {"error": self.authorize_error, "error_description": f"<b>{self.authorize_error}</b>"}
        else:
            code = f"code_{secrets.token_urlsafe(12)}"
            self.codes[code] = _Code(self.user, q["code_challenge"], redirect)
            params = {"code": code}
        params["state"] = q["state"]
        return RedirectResponse(f"{redirect}?{urlencode(params)}", status_code=302)

    async def _token(self, request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        form = {key: values[0] for key, values in parse_qs(raw).items()}
        self.in_flight += 1
        try:
            # Decided (and a grant redeemed) as the request arrives, like a real server; only the
            # answer waits.
            answer, rotated = self._answer(form)
            if self.token_delay > 0:
                deadline = time.monotonic() + self.token_delay
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    if await request.is_disconnected():
                        self.abandoned += 1
                        self.lost_rotations += rotated
                        return Response(status_code=499)
            return answer
        finally:
            self.in_flight -= 1

    def _answer(self, form: dict[str, str]) -> tuple[Response, bool]:
        """The answer to one token request and whether it rotated a refresh token."""
        if form.get("client_id") != CLIENT_ID:
            return JSONResponse({"error": "invalid_client"}, status_code=401), False
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code_grant(str(form.get("code", "")), form), False
        if grant != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400), False
        answer = self._refresh_grant(str(form.get("refresh_token", "")))
        if answer.status_code != 200:
            return answer, False
        failure = self.failures_after_redemption.pop(0) if self.failures_after_redemption else None
        if failure is None and self.after_redemption_rate > 0 and (
            self._fault_rng.random() < self.after_redemption_rate
        ):
            failure = (self._fault_rng.choice((500, 502, 503)), {"error": "server_error"})
        if failure is not None:
            self.failed_after_redemption += 1
            self.lost_rotations += 1
            status, body = failure
            return JSONResponse(body, status_code=status), False
        return answer, True

    def _code_grant(self, code: str, form: Any) -> Response:
        entry = self.codes.pop(code, None)
        if entry is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != entry.redirect_uri:
            return JSONResponse({"error": "invalid_grant", "error_description": "redirect"}, status_code=400)
        if entry.challenge is not None and _s256(str(form.get("code_verifier", ""))) != entry.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "pkce"}, status_code=400)
        self.code_grants += 1
        return JSONResponse(self.issue(entry.user))

    def _refresh_grant(self, token: str) -> Response:
        self.refresh_attempts += 1
        if self.before_refresh is not None:
            self.before_refresh()
        failure = self.refresh_failures.pop(0) if self.refresh_failures else self.fail_all_refreshes
        if failure is not None:
            status, body = failure
            return JSONResponse(body, status_code=status)
        if self.transient_rate > 0 and self._fault_rng.random() < self.transient_rate:
            self.transient_failures += 1
            status = self._fault_rng.choice((503, 500, 429))
            return JSONResponse({"error": {"message": "try again later", "code": "temporarily_unavailable"}},
                                status_code=status)
        if token in self.consumed:
            self.reuse_attempts += 1
            family = self.family.get(token)
            for live in [t for t in self.live if self.family.get(t) == family]:
                del self.live[live]  # reuse detected: the whole login is revoked
            return JSONResponse({"error": "refresh_token_reused"}, status_code=400)
        user = self.live.get(token)
        if user is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if user.account_id in self.revoked_accounts:
            self.permanent_failures += 1
            del self.live[token]
            return JSONResponse({"error": "invalid_grant", "error_description": "revoked"}, status_code=400)
        self.refresh_grants += 1
        body = self.issue(user)
        if self.omit_refresh_token:
            self.live.pop(body.pop("refresh_token"))
        else:
            self.family[body["refresh_token"]] = self.family.get(token, 0)
            del self.live[token]
            self.consumed.add(token)
        return JSONResponse(body)

    async def _device_usercode(self, request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict) or body.get("client_id") != CLIENT_ID:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        device_id = f"dev_{secrets.token_urlsafe(8)}"
        user_code = f"{secrets.randbelow(10**4):04d}-{secrets.randbelow(10**4):04d}"
        self.devices[device_id] = _Device(user_code)
        return JSONResponse(
            {
                "device_auth_id": device_id,
                "user_code": user_code,
                "interval": str(self.device_interval),
                "expires_in": self.device_expires_in,
            }
        )

    async def _device_token(self, request: Request) -> Response:
        self.device_polls += 1
        body = await request.json()
        device = self.devices.get(body.get("device_auth_id", "")) if isinstance(body, dict) else None
        if device is None or body.get("user_code") != device.user_code:
            return JSONResponse({"error": "unknown device code"}, status_code=400)
        if device.denied:
            return JSONResponse({"error": "access_denied"}, status_code=400)
        if device.approved_as is None:
            return JSONResponse({"error": "authorization_pending"}, status_code=403)
        code = f"code_{secrets.token_urlsafe(12)}"
        redirect = f"{request.base_url}".rstrip("/") + "/deviceauth/callback"
        self.codes[code] = _Code(device.approved_as, _s256(device.verifier), redirect)
        del self.devices[body["device_auth_id"]]
        challenge = _s256(device.verifier)
        answer = {"authorization_code": code, "code_challenge": challenge, "code_verifier": device.verifier}
        return JSONResponse(answer)
