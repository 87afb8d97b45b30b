"""``codex-pool status [--json]``: the proxy URL, the local key, pool health and each account's quota.

Works whether or not a proxy is running: it reads the instance file the running proxy writes and
the pool file. ``--json`` has at least ``proxy_url``, ``api_key``, ``ui_url``, ``running``,
``accounts`` (with their quota windows) and ``forecast`` (per window: the pool's used %, its pace,
when it runs out and the next reset; see :func:`tray.outlook.forecast_json`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from tray import outlook
from tray.commands.accounts import account_row, render_table
from tray.config import load_config
from tray.paths import Paths, api_key, resolve_paths, ui_token
from tray.store import Store


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="show the proxy URL, the local key, pool health and each account's quota",
        description="Show the proxy address and key clients need, and how the pool is doing.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_instance(path: Path) -> dict[str, Any] | None:
    """The running proxy's instance file, when its process is alive and it answers /healthz."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not _pid_alive(data.get("pid")) or not isinstance(data.get("url"), str):
        return None
    try:
        ok = httpx.get(f"{data['url']}/healthz", timeout=2.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        ok = False
    return data if ok else None


def health(rows: list[dict[str, Any]]) -> str:
    usable = [r for r in rows if r.get("state") == "enabled" and not r.get("cooldown")]
    if not rows:
        return "empty"
    if not usable:
        return "exhausted"
    return "healthy" if len(usable) == len(rows) else "degraded"


def collect(paths: Paths, now: float) -> dict[str, Any]:
    instance = read_instance(paths.instance_file)
    config = load_config(paths.config_file).config
    with Store.open(paths.db_file, backup_dir=paths.backup_dir) as store:
        cooldowns, usages = store.cooldowns(now), store.usages()
        rows = [account_row(i, a, cooldowns.get(a.id), usages.get(a.id), now)
                for i, a in enumerate(store.accounts(), start=1)]
        forecasts = outlook.forecasts(store, now)
    url = instance["url"] if instance else f"http://{config.host}:{config.port}"
    token = ui_token(paths)
    return {
        "running": instance is not None,
        "pid": instance.get("pid") if instance else None,
        "proxy_url": url,
        "api_key": api_key(paths),
        "ui_url": instance.get("ui_url") if instance else f"{url}/ui/#token={token}",
        "codex_base_url": f"{url}/backend-api/codex",
        "openai_base_url": f"{url}/v1",
        "health": health(rows),
        "accounts": rows,
        "forecast": outlook.forecast_json(forecasts),
        "forecast_text": outlook.status_text(forecasts, now),
    }


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths().ensure()
    now = time.time()
    data = collect(paths, now)
    forecast_lines = data.pop("forecast_text")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    state = "running" if data["running"] else "not running"
    print(f"Proxy:      {data['proxy_url']} ({state})")
    print(f"Local key:  {data['api_key']}")
    print(f"Window:     {data['ui_url']}")
    print(f"Codex CLI:  base_url = {data['codex_base_url']}")
    print(f"OpenAI:     base_url = {data['openai_base_url']}")
    print(f"Pool:       {data['health']}")
    for n, line in enumerate(forecast_lines):
        print(f"{'Forecast:' if n == 0 else '':<12}{line}")
    if data["accounts"]:
        print()
        print(render_table(data["accounts"], now))
    return 0
