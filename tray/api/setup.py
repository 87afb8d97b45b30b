"""Management API endpoints for settings, client setup and start-at-login.

Each handler validates first and changes nothing on a bad request. Settings are saved with
:func:`tray.config.save_config`, which checks every key and refuses the save with one problem per
key (shown beside its field) or edits only the changed keys of the user's file; then the engine's
``reload_config()`` applies them.
The answers name, under ``pending_restart``, the saved settings that wait for the proxy to restart
(:mod:`tray.api.restart`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tray import autostart, config
from tray.api.base import BadRequest, error, json_body, ok
from tray.api.views import jsonable
from tray.clients import KINDS, apply, config_path, is_applied, snippets, undo
from tray.errors import AutostartError, ClientSetupError, ConfigError, SettingsRejected
from tray.models import Config

if TYPE_CHECKING:
    from tray.api.base import ManagedEngine

CLIENT_NAMES = {"codex": "Codex CLI", "opencode": "opencode"}
# Where the accounts' tokens are sent: a management credential must not be enough to redirect them,
# so these change only by editing config.toml (in the user's own folder) and apply on restart.
FILE_ONLY = ("upstream-url", "auth-url", "upstream-proxy")


def settings_view(loaded: config.LoadedConfig) -> dict[str, Any]:
    """Every documented key with its current value, default and help text."""
    cfg, base = loaded.config, Config()
    values: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for key in config.SPEC:
        values[key.name] = jsonable(getattr(cfg, key.attr))
        defaults[key.name] = jsonable(getattr(base, key.attr))
    values["upstream-proxy"] = config.without_credentials(cfg.upstream_proxy)  # the password stays put
    kinds = [k for k in config.NOTIFICATION_SPEC]
    values["notifications"] = {k.name.split(".", 1)[1]: getattr(cfg.notifications, k.attr) for k in kinds}
    defaults["notifications"] = {k.name.split(".", 1)[1]: getattr(base.notifications, k.attr) for k in kinds}
    help_texts = {k.name: " ".join(k.help.split("\n")) for k in config.SPEC + config.NOTIFICATION_SPEC}
    return {
        "values": values,
        "defaults": defaults,
        "help": help_texts,
        "problems": list(loaded.messages),
        "path": str(loaded.path),
        "file_only": list(FILE_ONLY),
    }


def file_only_changes(updates: Mapping[str, Any], current: Config, path: str) -> dict[str, str]:
    """The :data:`FILE_ONLY` keys that ``updates`` would change, each with why it may not."""
    return {
        name: f"{name} can only be changed by editing {path} (it takes effect when codex-pool restarts)."
        for name in FILE_ONLY
        if name in updates and updates[name] != config.value_of(current, name)
    }


class SetupApi:
    def __init__(self, engine: ManagedEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def get_settings(self, request: Request) -> Response:
        loaded = await run_in_threadpool(config.load_config, self.engine.paths.config_file)
        return ok({**settings_view(loaded), "pending_restart": self.engine.pending_restart()})

    async def put_settings(self, request: Request) -> Response:
        body = await json_body(request)
        updates = body.get("values", body)
        if not isinstance(updates, dict) or not updates:
            raise BadRequest('Send the settings to change as a JSON object: {"values": {"port": 4455}}.')
        path = self.engine.paths.config_file
        current = (await run_in_threadpool(config.load_config, path)).config
        locked = file_only_changes(updates, current, str(path))
        if locked:
            return error(403, "Not saved: " + " ".join(locked.values()), problems=locked)
        try:
            loaded = await run_in_threadpool(config.save_config, path, updates)
        except SettingsRejected as exc:  # a value that does not fit: said beside its field
            return error(400, str(exc), problems=exc.problems)
        except ConfigError as exc:  # the file itself: unreadable, not TOML, not writable
            return error(409, str(exc), problems={})
        await run_in_threadpool(self.engine.reload_config)
        pending = self.engine.pending_restart()
        changed = [name for name in updates if name not in FILE_ONLY]
        # What the save put into effect, and what waits for "Restart proxy now".
        return ok({**settings_view(loaded), "saved": True, "pending_restart": pending,
                   "applied": [name for name in changed if name not in pending]})

    def _client_views(self) -> list[dict[str, Any]]:
        url, key = self.engine.url, self.engine.api_key
        texts = snippets(url, key)
        views = []
        for kind in KINDS:
            applied = is_applied(kind, url)
            views.append(
                {
                    "id": kind,
                    "name": CLIENT_NAMES[kind],
                    "path": str(config_path(kind)),
                    "snippet": texts[kind],
                    "applied": applied,
                    "can_undo": applied,
                }
            )
        return views

    def _autostart_view(self) -> dict[str, Any] | None:
        try:
            state = autostart.status()
        except AutostartError:
            return None
        return {"enabled": state.enabled, "location": state.location}

    async def get_clients(self, request: Request) -> Response:
        views = await run_in_threadpool(self._client_views)
        auto = await run_in_threadpool(self._autostart_view)
        engine = self.engine
        return ok({"proxy_url": engine.url, "api_key": engine.api_key, "clients": views, "autostart": auto})

    async def client_action(self, request: Request) -> Response:
        kind, action = request.path_params["kind"], request.path_params["action"]
        if kind not in KINDS or action not in ("apply", "undo"):
            return error(404, f"Unknown client action '{kind}/{action}': use codex|opencode, apply|undo.")
        try:
            if action == "apply":
                result = await run_in_threadpool(
                    apply, kind, self.engine.url, self.engine.api_key, self.engine.paths
                )
            else:
                result = await run_in_threadpool(undo, kind, self.engine.paths)
        except ClientSetupError as exc:
            return error(409, str(exc))
        views = await run_in_threadpool(self._client_views)
        return ok(
            {
                "changed": result.changed,
                "message": result.message,
                "notes": list(result.notes),
                "client": next(v for v in views if v["id"] == kind),
            }
        )

    async def get_autostart(self, request: Request) -> Response:
        view = await run_in_threadpool(self._autostart_view)
        if view is None:
            return error(409, "Start at login is not available on this system.")
        return ok(view)

    async def put_autostart(self, request: Request) -> Response:
        body = await json_body(request)
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise BadRequest("Send {\"enabled\": true} or {\"enabled\": false}.")
        try:
            await run_in_threadpool(autostart.enable if enabled else autostart.disable)
        except AutostartError as exc:
            return error(409, str(exc))
        return ok(await run_in_threadpool(self._autostart_view))


def setup_routes(engine: ManagedEngine, clock: Callable[[], float] = time.time) -> list[Route]:
    setup = SetupApi(engine, clock)
    return [
        Route("/settings", setup.get_settings, methods=["GET"]),
        Route("/settings", setup.put_settings, methods=["PUT"]),
        Route("/clients", setup.get_clients, methods=["GET"]),
        Route("/clients/{kind}/{action:str}", setup.client_action, methods=["POST"]),
        Route("/autostart", setup.get_autostart, methods=["GET"]),
        Route("/autostart", setup.put_autostart, methods=["PUT"]),
    ]
