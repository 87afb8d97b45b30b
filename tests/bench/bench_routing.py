"""Time one full routing decision (usage views + rank + fast-mode decision) for pools of 1 to 1,000
accounts. A script, not a test: ``.venv/bin/python -m tests.bench.bench_routing [--write]``
(``--write`` puts the figures in docs/performance.md under "Routing decision").

"cached" is the steady state (cache entries unchanged since the last decision, so their parsed form
is reused); "new payloads" re-parses every entry's JSON, as after every account's usage changed.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.report import write_section
from tray.models import Account, AccountState, Identity, QuotaEntry, TokenSet
from tray.quota import usage as quota
from tray.routing import fastmode
from tray.routing.ranking import RoutingSettings, rank

NOW = 1_800_000_000.0
SIZES = (1, 20, 100, 1000)
BODY = {
    "model": "gpt-5",
    "input": [{"role": "user", "content": "hi"}],
    "stream": True,
    "prompt_cache_key": "s",
}


def pool(n: int, rng: random.Random) -> tuple[list[Account], dict[int, QuotaEntry]]:
    accounts, entries = [], {}
    for i in range(n):
        accounts.append(
            Account(
                i + 1,
                Identity(f"acc-{i}", f"sub-{i}"),
                f"u{i}@example.com",
                None,
                rng.choice(["plus", "pro"]),
                i,
                i == 0,
                AccountState.ENABLED,
                None,
                None,
                TokenSet("a", "r", None, NOW + 3600),
                NOW,
                NOW,
            )
        )
        payload = {
            "plan_type": rng.choice(["plus", "pro", "prolite", "team"]),
            "account_id": f"acc-{i}",
            "rate_limit": {
                "allowed": rng.random() > 0.05,
                "limit_reached": False,
                "primary_window": {
                    "used_percent": rng.uniform(0, 100),
                    "limit_window_seconds": 18000,
                    "reset_after_seconds": rng.uniform(60, 18000),
                },
                "secondary_window": {
                    "used_percent": rng.uniform(0, 100),
                    "limit_window_seconds": 604800,
                    "reset_after_seconds": rng.uniform(20000, 604800),
                },
            },
            "credits": {"has_credits": False, "unlimited": False, "balance": "0"},
        }
        entries[i + 1] = QuotaEntry(i + 1, json.dumps(payload), NOW - rng.uniform(0, 300))
    return accounts, entries


def decision(accounts: list[Account], entries: dict[int, QuotaEntry], settings: RoutingSettings) -> None:
    views = {a.id: quota.usage_view(entries.get(a.id), NOW, account_id=a.id) for a in accounts}
    ranking = rank(accounts, views, sticky_account=None, settings=settings, touched={}, now=NOW)
    fastmode.decide(BODY, views[ranking.order[0]], settings, None, NOW)


def per_decision_us(n: int, cold: bool) -> tuple[float, float]:
    """(best, median) microseconds per decision over 40 batches; the best batch is the figure least
    disturbed by other load on the machine."""
    rng = random.Random(n)
    accounts, entries = pool(n, rng)
    settings = RoutingSettings()
    per_batch = max(3, 3000 // n)
    decision(accounts, entries, settings)
    samples = []
    for _ in range(40):
        elapsed = 0.0
        for _ in range(per_batch):
            if cold:
                quota._parse_raw.cache_clear()
                quota._prepared.cache_clear()
            start = time.perf_counter()
            decision(accounts, entries, settings)
            elapsed += time.perf_counter() - start
        samples.append(elapsed / per_batch * 1e6)
    return min(samples), statistics.median(samples)


def main() -> None:
    rows = [
        "| accounts | cached: best / median µs | new payloads: best / median µs | µs per account (cached) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for n in SIZES:
        (warm, warm_med), (cold, cold_med) = per_decision_us(n, False), per_decision_us(n, True)
        rows.append(f"| {n:,} | {warm:.0f} / {warm_med:.0f} | {cold:.0f} / {cold_med:.0f} | {warm / n:.1f} |")
    table = "\n".join(rows)
    print(f"python {sys.version.split()[0]}\n{table}")
    if "--write" in sys.argv:
        intro = (
            "One decision = a usage view per account (from its cached entry) + `routing.rank` + "
            "`fastmode.decide` for the chosen account; measured by `python -m tests.bench.bench_routing`, "
            f'Python {sys.version.split()[0]}, {os.cpu_count()} CPUs. "Cached" is the steady state '
            '(entries unchanged since the last request, so their parsed form is reused); "new payloads" '
            "re-parses every entry's JSON. Best of 40 batches, and the median. Load average "
            f"{os.getloadavg()[0]:.1f} while measuring (other work shares the CPUs, so these are upper "
            "bounds). Goal: ≤ 0.5 ms at 20 accounts, linear growth.\n\n"
        )
        write_section(
            Path(__file__).resolve().parents[2] / "docs" / "performance.md", "Routing decision", intro + table
        )


if __name__ == "__main__":
    main()
