"""Management API endpoints for the Usage page and for quota the window does not know yet.

- ``GET /api/usage?hours=24``: the chart's data (:func:`tray.forecast.outlook.chart_json`): per window the
  pool's line, each account's line, the resets in view and the forecast with its sentence.
- ``GET /api/quota``: per account, whether this process is fetching its usage now and what the
  last failed fetch said, so the Accounts page says "fetching" (with a spinner) or what failed
  instead of a bare "not known".
- ``POST /api/quota/refresh`` (``{"account_id": n}`` optional): fetch usage now, for every
  enabled account or one; the window calls it when it opens. Answers at once with the states.

Store reads run in the thread pool; the fetches run on the proxy's loop, in the background.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tray.api.base import BadRequest, field, json_body, ok
from tray.errors import AccountNotFoundError
from tray.forecast import MAX_HOURS, chart_json, report
from tray.models import Account
from tray.quota import QuotaService
from tray.store import Store

DEFAULT_HOURS = 24


class UsageEngine(Protocol):
    """What these endpoints need from :class:`tray.engine.Engine` (and its ``quota`` service,
    when it runs one)."""

    store: Store


class UsageApi:
    def __init__(self, engine: UsageEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    @property
    def service(self) -> QuotaService | None:
        found = getattr(self.engine, "quota", None)
        return found if isinstance(found, QuotaService) else None

    async def usage(self, request: Request) -> Response:
        raw = request.query_params.get("hours", str(DEFAULT_HOURS))
        try:
            hours = float(raw)
        except ValueError as exc:
            raise BadRequest("'hours' must be a number.") from exc
        if not 0 < hours <= MAX_HOURS:
            raise BadRequest(f"'hours' must be more than 0 and at most {MAX_HOURS}.")
        now = self.clock()
        rep = await run_in_threadpool(report, self.engine.store, now, hours)
        return ok({**chart_json(rep), "hours": hours})

    def _states(self, accounts: list[Account]) -> dict[str, dict[str, Any]]:
        service = self.service
        states: dict[str, dict[str, Any]] = {}
        for account in accounts:
            fetching, failed = service.fetch_state(account.id) if service is not None else (False, None)
            states[str(account.id)] = {"fetching": fetching, "error": failed}
        return states

    async def quota(self, request: Request) -> Response:
        accounts = await run_in_threadpool(self.engine.store.accounts)
        return ok({"accounts": self._states(accounts)})

    async def refresh(self, request: Request) -> Response:
        body = await json_body(request)
        unknown = set(body) - {"account_id"}
        if unknown:
            raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))} (use 'account_id').")
        accounts = await run_in_threadpool(self.engine.store.accounts)
        if "account_id" in body:
            wanted = field(body, "account_id", int, "a whole number")
            accounts = [a for a in accounts if a.id == wanted]
            if not accounts:
                raise AccountNotFoundError(f"There is no account with id {wanted}.")
        if self.service is not None:
            self.service.refresh(accounts)
        return ok({"accounts": self._states(accounts)})


def usage_routes(engine: UsageEngine, clock: Callable[[], float] = time.time) -> list[Route]:
    api = UsageApi(engine, clock)
    return [
        Route("/usage", api.usage, methods=["GET"]),
        Route("/quota", api.quota, methods=["GET"]),
        Route("/quota/refresh", api.refresh, methods=["POST"]),
    ]
