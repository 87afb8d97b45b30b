"""``codex-pool usage [--json] [--csv] [--hours N]``: the usage history, per account and for the pool.

Reads the pool file (no running proxy needed). The text form shows each window's forecast and a
short summary per account; ``--json`` gives ``{"pool": {"5h": [{"at", "used_percent"}], ...},
"accounts": [{"id", "email", "samples": {"5h": [...], ...}}], ...}`` (see
:func:`tray.forecast.outlook.usage_json`); ``--csv`` one row per pool point and per sample.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from typing import Any

from tray.errors import PoolError
from tray.forecast import CSV_HEADER, MAX_HOURS, Report, report, status_text, usage_json, usage_rows
from tray.paths import resolve_paths
from tray.quota import window_name
from tray.store import Store

DEFAULT_HOURS = 24.0


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "usage",
        help="show the quota history of each account and of the pool, and where the pool is heading",
        description="Show the usage history (per account and for the pool) and the forecast.",
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--csv", action="store_true", help="print CSV (one row per pool point and sample)")
    parser.add_argument("--hours", type=float, default=DEFAULT_HOURS, metavar="N",
                        help=f"how many hours back (default {DEFAULT_HOURS:g}, at most {MAX_HOURS})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.hours <= MAX_HOURS:
        raise PoolError(f"--hours must be more than 0 and at most {MAX_HOURS} (35 days)")
    paths = resolve_paths().ensure()
    now = time.time()
    with Store.open(paths.db_file, backup_dir=paths.backup_dir) as store:
        rep = report(store, now, args.hours)
    if args.json:
        print(json.dumps(usage_json(rep), indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(usage_rows(rep))
    else:
        print("\n".join(text(rep, args.hours)))
    return 0


def text(rep: Report, hours: float) -> list[str]:
    lines = [f"Pool (last {hours:g} h):"]
    lines += [f"  {line}" for line in status_text(rep.forecasts, rep.now)]
    samples = rep.in_range()
    if not samples:
        return [*lines, "", f"No quota readings in the last {hours:g} h."]
    lines += ["", "Accounts:"]
    for account in rep.accounts:
        mine = [s for s in samples if s.account_id == account.id]
        if not mine:
            lines.append(f"  {account.name}: no readings")
            continue
        parts = []
        for label in rep.windows:
            window = [s for s in mine if window_name(s.window_seconds) == label]
            if window:
                low, high = min(s.used_percent for s in window), max(s.used_percent for s in window)
                now = window[-1].used_percent
                parts.append(f"{label} {now:.0f}% now ({low:.0f}-{high:.0f}%, {len(window)} readings)")
        lines.append(f"  {account.name}: " + "; ".join(parts))
    return lines
