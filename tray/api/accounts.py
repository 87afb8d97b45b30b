"""Management API endpoints for the accounts: the list and status, edits (label, on/off, order,
primary), removal, and the activity log of routing decisions."""


from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tray import __version__
from tray.api import views as apiviews
from tray.api.base import BadRequest, ManagedEngine, account_id, field, json_body, ok, threaded
from tray.errors import AccountError, AccountNotFoundError
from tray.forecast import forecasts
from tray.health import pool_health, snapshot_of
from tray.models import AccountState
from tray.quota import shown_usage

MAX_ACTIVITY = 1000


class AccountsApi:
    """Accounts, pool edits and status."""

    def __init__(self, engine: ManagedEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def views(self) -> list[dict[str, Any]]:
        store, now = self.engine.store, self.clock()
        cooldowns, usages = store.cooldowns(now), store.usages()
        return [
            apiviews.account_view(a, cooldowns.get(a.id), usages.get(a.id), now)
            for a in store.accounts(include_inactive=True)
        ]

    def one(self, ident: int) -> dict[str, Any]:
        for view in self.views():
            if view["id"] == ident:
                return view
        raise AccountNotFoundError(f"There is no account with id {ident}.")

    def health(self) -> dict[str, Any]:
        """The pool's health as the tray says it (:func:`tray.health.pool_health`): the same
        accounts, quota, cooldowns, config problems and forecast, read here."""
        store, now = self.engine.store, self.clock()
        accounts = store.accounts(include_inactive=True)
        usages = store.usages()
        snapshot = snapshot_of(
            accounts, {a.id: shown_usage(usages.get(a.id)) for a in accounts}, store.cooldowns(now), now,
            config_problems=self._problems(), forecasts=forecasts(store, now).values(),
        )
        return apiviews.health_view(pool_health(snapshot))

    def _problems(self) -> list[str]:
        return list(self.engine.loaded.messages)

    async def status(self, request: Request) -> Response:
        views = await threaded(self.views)
        health = await threaded(self.health)
        engine = self.engine
        return ok(
            {
                "version": __version__,
                # Changes when the accounts or the settings do, whichever process changed them.
                "revision": apiviews.revision(views, engine.config, engine.pending_restart()),
                "proxy_url": self.engine.url,
                "api_key": self.engine.api_key,
                "health": health,
                "accounts": len(views),
                "config_path": str(self.engine.paths.config_file),
                "config_problems": self._problems(),
                "now": self.clock(),
            }
        )

    async def list(self, request: Request) -> Response:
        return ok({"accounts": await threaded(self.views), "now": self.clock()})

    async def patch(self, request: Request) -> Response:
        ident, body = account_id(request), await json_body(request)
        unknown = set(body) - {"label", "enabled"}
        if unknown:
            raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))} (use 'label' or 'enabled').")
        label = body.get("label")
        if "label" in body and label is not None:
            label = field(body, "label", str, "text")
            if len(label) > 100:
                raise BadRequest("Labels are at most 100 characters.")
        enabled = field(body, "enabled", bool, "true or false") if "enabled" in body else None

        def apply() -> dict[str, Any]:
            store = self.engine.store
            account = store.get(ident)
            if account is None:
                raise AccountNotFoundError(f"There is no account with id {ident}.")
            if enabled is True and account.state is AccountState.NEEDS_LOGIN:
                raise AccountError(f"{account.name} needs a new sign-in: use Re-login to turn it back on.")
            with store.atomic():
                if "label" in body:
                    store.set_label(ident, label)
                if enabled is True and account.state is AccountState.DISABLED:
                    store.set_state(ident, AccountState.ENABLED)
                elif enabled is False and account.state is not AccountState.DISABLED:
                    store.set_state(ident, AccountState.DISABLED, "Turned off by you")
            return self.one(ident)

        return ok({"account": await threaded(apply)})

    async def move(self, request: Request) -> Response:
        ident, body = account_id(request), await json_body(request)
        index = field(body, "index", int, "a whole number (0 is first)")
        if index < 0:
            raise BadRequest("'index' must be 0 or more.")
        await threaded(self.engine.store.move, ident, index)
        return ok({"accounts": await threaded(self.views)})

    async def primary(self, request: Request) -> Response:
        ident = account_id(request)
        await threaded(self.engine.store.set_primary, ident)
        return ok({"accounts": await threaded(self.views)})

    async def delete(self, request: Request) -> Response:
        ident = account_id(request)
        await threaded(self.engine.store.remove, ident)
        return ok({"removed": ident, "accounts": await threaded(self.views)})

    async def activity(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "100")
        try:
            limit = int(raw)
        except ValueError as exc:
            raise BadRequest("'limit' must be a whole number.") from exc
        if not 1 <= limit <= MAX_ACTIVITY:
            raise BadRequest(f"'limit' must be between 1 and {MAX_ACTIVITY}.")
        decisions = await threaded(self.engine.store.decisions, limit)
        return ok({"decisions": [apiviews.decision_view(d) for d in decisions]})
