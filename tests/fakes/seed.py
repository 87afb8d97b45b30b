"""Put accounts, quota, cooldowns and decisions into a real pool store (tests only)."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakes.jwt import account_claims, make_jwt
from tests.fakes.upstream import FakeUpstream
from tests.fakes.upstream_wire import usage_payload
from tray.models import Account, CandidateScore, Cooldown, Decision, Identity, TokenSet
from tray.store.accounts import Store


def add_account(
    store: Store,
    email: str,
    *,
    plan: str = "plus",
    account_id: str | None = None,
    primary: bool = False,
    upstream: FakeUpstream | None = None,
    usage: dict[str, Any] | None = None,
) -> Account:
    """An account in the pool file. With ``upstream``, the fake backend knows its access token (and
    answers its usage with ``usage``) before the pool does: a running proxy that fetches the quota of
    an account as it comes in gets an answer, not a 401 that would send it to sign in again."""
    chatgpt_id = account_id or f"acc-{email.split('@')[0]}"
    subject = f"user-{email.split('@')[0]}"
    claims = account_claims(account_id=chatgpt_id, subject=subject, email=email, plan=plan)
    tokens = TokenSet(
        access_token=make_jwt(claims),
        refresh_token=f"rt-secret-{chatgpt_id}",
        id_token=make_jwt(claims),
        expires_at=time.time() + 3600,
    )
    if upstream is not None:
        upstream.add_account(chatgpt_id, tokens.access_token, usage, plan_type=plan)
    return store.save_login(Identity(chatgpt_id, subject), tokens, email, plan, make_primary=primary)


def usage_at(short_used: float, weekly_used: float, short_reset_s: float = 2 * 3600 + 600, age_s: float = 0.0,
             plan: str = "plus", **kw: object) -> tuple[dict[str, Any], float]:
    """A usage payload as :func:`put_usage` stores it, and the time it was observed."""
    now = time.time() - age_s
    payload = usage_payload(primary_used=short_used, primary_reset_after_s=short_reset_s,
                            secondary_used=weekly_used, secondary_reset_after_s=3 * 86400, plan_type=plan,
                            now=now, **kw)  # type: ignore[arg-type]
    return payload, now


def put_usage(
    store: Store,
    account: Account,
    short_used: float,
    weekly_used: float,
    short_reset_s: float = 2 * 3600 + 600,
    age_s: float = 0.0,
    **kw: object,
) -> None:
    now = time.time() - age_s
    payload = usage_payload(
        primary_used=short_used,
        primary_reset_after_s=short_reset_s,
        secondary_used=weekly_used,
        secondary_reset_after_s=3 * 86400,
        plan_type=account.plan or "plus",
        now=now,
        **kw,  # type: ignore[arg-type]
    )
    store.put_usage(account.id, json.dumps(payload), now)


def cool_down(store: Store, account: Account, seconds: float = 600) -> None:
    store.set_cooldown(Cooldown(account.id, time.time() + seconds, 429, "Rate limited (HTTP 429)", "body"))


def record(store: Store, account: Account, others: list[Account], reason: str = "higher score") -> None:
    scores = tuple(CandidateScore(a.id, a.name, 0.8 - 0.2 * i) for i, a in enumerate([account, *others]))
    store.record_decision(
        Decision(
            at=time.time(),
            account_id=account.id,
            account_name=account.name,
            reason=reason,
            scores=scores,
            fast_note=None,
            cache_age=12.0,
            status=200,
            latency_ms=412.0,
            route="/backend-api/codex/responses",
        )
    )
