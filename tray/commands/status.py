"""``codex-pool status [--json]``: the proxy URL, the local key, pool health and each account's quota.

Works whether or not a proxy is running: it reads the instance file the running proxy writes and
the pool file. Before it shows an address or the key it checks that the listener on the proxy's
port is this pool's own proxy (:mod:`tray.api.owner`); when another program holds the port it says so
and shows neither. The window address carries a one-time code the running proxy mints for it.
``--json`` has at least ``proxy_url``, ``api_key``, ``ui_url``, ``running``, ``port_holder``,
``health`` and ``health_words`` (:func:`tray.health.pool_health`: the tray's words), ``accounts``
(with their quota windows) and ``forecast`` (per window: the pool's used %, its pace,
when it runs out and the next reset; see :func:`tray.forecast.outlook.forecast_json`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tray.api import Probe, probe
from tray.commands.accounts import account_row, render_table
from tray.config import load_config
from tray.forecast import forecast_json, forecasts, status_text
from tray.health import pool_health, snapshot_of
from tray.paths import Paths, api_key, resolve_paths, ui_token
from tray.portholder import process_alive
from tray.quota import shown_usage
from tray.store import Store


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="show the proxy URL, the local key, pool health and each account's quota",
        description="Show the proxy address and key clients need, and how the pool is doing.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def read_instance(path: Path) -> dict[str, Any] | None:
    """The running proxy's instance file, when the process that wrote it is alive."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    if not process_alive(data.get("pid")):  # never os.kill(pid, 0): on Windows that sends Ctrl+C
        return None
    return data


def proxy_address(paths: Paths) -> tuple[str, dict[str, Any] | None]:
    """The running proxy's address (from its instance file), else the configured one."""
    instance = read_instance(paths.instance_file)
    if instance is not None:
        return str(instance["url"]), instance
    config = load_config(paths.config_file).config
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}", None


def check_listener(paths: Paths, *, want_code: bool = False) -> tuple[str, Probe]:
    """The proxy's address and who listens there (``ours`` / ``nobody`` / ``other``)."""
    url, _ = proxy_address(paths)
    return url, probe(url, ui_token(paths), want_code=want_code)


def collect(paths: Paths, now: float) -> dict[str, Any]:
    url, instance = proxy_address(paths)
    listener = probe(url, ui_token(paths), want_code=True)
    problems = load_config(paths.config_file).messages
    with Store.open(paths.db_file, backup_dir=paths.backup_dir) as store:
        cooldowns, usages, accounts = store.cooldowns(now), store.usages(), store.accounts()
        rows = [account_row(i, a, cooldowns.get(a.id), usages.get(a.id), now)
                for i, a in enumerate(accounts, start=1)]
        outlooks = forecasts(store, now)
    # The pool's health whether or not a proxy runs (the "Proxy:" line says that), as the tray says it.
    pool = pool_health(snapshot_of(accounts, {a.id: shown_usage(usages.get(a.id)) for a in accounts},
                                   cooldowns, now, config_problems=problems, forecasts=outlooks.values()))
    ours, other = listener.state == "ours", listener.state == "other"
    return {
        "running": ours,
        "pid": instance.get("pid") if ours and instance else None,
        "proxy_url": url,
        # A squatter on the port would be sent whatever a client is configured with: no key then.
        "api_key": None if other else api_key(paths),
        "ui_url": f"{url}/ui/#code={listener.code}" if ours and listener.code else None,
        "port_holder": listener.refusal if other else None,
        "codex_base_url": f"{url}/backend-api/codex",
        "openai_base_url": f"{url}/v1",
        "health": pool.status,
        "health_words": pool.words,
        "accounts": rows,
        "forecast": forecast_json(outlooks),
        "forecast_text": status_text(outlooks, now),
    }


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths().ensure()
    now = time.time()
    data = collect(paths, now)
    forecast_lines = data.pop("forecast_text")
    words = str(data["health_words"])
    if args.json:
        print(json.dumps(data, indent=2))
        return 1 if data["port_holder"] else 0
    if data["port_holder"]:
        print(f"Proxy:      {data['port_holder']}; codex-pool is not running there.")
        print("            Stop that program, or choose another port ('port = <n>' in config.toml),")
        print("            then start codex-pool. No key or window address is shown meanwhile.")
    else:
        state = "running" if data["running"] else "not running"
        print(f"Proxy:      {data['proxy_url']} ({state})")
        print(f"Local key:  {data['api_key']}")
        window = data["ui_url"] or "start codex-pool first (the running proxy makes the window address)"
        print(f"Window:     {window}")
        print(f"Codex CLI:  base_url = {data['codex_base_url']}")
        print(f"OpenAI:     base_url = {data['openai_base_url']}")
    print(f"Pool:       {words[:1].upper() + words[1:]}")
    for n, line in enumerate(forecast_lines):
        print(f"{'Forecast:' if n == 0 else '':<12}{line}")
    if data["accounts"]:
        print()
        print(render_table(data["accounts"], now))
    return 1 if data["port_holder"] else 0
