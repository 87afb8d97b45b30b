"""The usage history and forecast end to end: a real proxy in front of the fake chatgpt.com whose
usage rises with every answer; ``codex-pool status --json`` and ``codex-pool usage`` read the pool
file from another process."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.proxykit import Pool, running_pool

ROOT = Path(__file__).resolve().parents[2]
STEP = 15.0  # seconds of the pool's clock between requests
REQUESTS = 6  # over 75 s: more than a minute of work


class LaggingClock:
    """Real time minus a lag that only shrinks: the test moves the pool a step forward after each
    request, and it ends at the real time (the CLI reads the pool file with the real clock)."""

    def __init__(self, lag: float) -> None:
        self.lag = lag

    def __call__(self) -> float:
        return time.time() - self.lag


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tray", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ), check=False)


def raise_usage(pool: Pool, fake_id: str, points: float) -> None:
    """The account spent ``points`` % of its 5-hour window (and a tenth of that of its week)."""
    usage = pool.upstream.usage_of(fake_id)
    limit = usage["rate_limit"]
    limit["primary_window"]["used_percent"] += points
    limit["secondary_window"]["used_percent"] += points / 10
    pool.upstream.set_usage(fake_id, usage)


def parse(at: str | None) -> float | None:
    return None if at is None else datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def working_pool(pool_home: Path) -> Iterator[tuple[Pool, list[tuple[str, float]]]]:
    """Six answers 15 s apart; yields the pool and what each answer's headers said: (account, used %)."""
    clock = LaggingClock(STEP * (REQUESTS - 1))
    now = clock()
    usage = {
        # a: 40 % of its window used, which resets in an hour; b: 70 %, resets in 1.5 h.
        "a": {"primary_used": 40, "primary_reset_after_s": 3600, "secondary_used": 30,
              "secondary_reset_after_s": 3 * 86400, "now": now},
        "b": {"primary_used": 70, "primary_reset_after_s": 5400, "secondary_used": 50,
              "secondary_reset_after_s": 4 * 86400, "now": now},
    }
    with running_pool(["a", "b"], usage=usage, clock=clock) as pool:
        served: list[tuple[str, float]] = []
        for n in range(REQUESTS):
            response = pool.post()
            assert response.status_code == 200, response.text
            who = pool.served_by(response)
            assert who is not None
            served.append((who, float(response.headers["x-codex-primary-used-percent"])))
            pool.wait_bookkeeping()
            raise_usage(pool, who, 3.0)  # the next answer's headers say 3 points more
            if n < REQUESTS - 1:
                clock.lag -= STEP
        clock.lag = 0.0
        yield pool, served


def test_rising_usage_gives_samples_a_pace_and_a_runout_before_the_reset(
        working_pool: tuple[Pool, list[tuple[str, float]]]) -> None:
    pool, served = working_pool
    samples = [s for s in pool.engine.store.samples(0, baseline=False) if s.window_seconds == 18000]
    ids = {fid: account.id for fid, account in pool.accounts.items()}
    kept = {(s.account_id, s.used_percent) for s in samples}
    # Each answer said something new, and each is in the history (a usage fetch that saw the same
    # reading a moment earlier stands for it: one sample per reading).
    assert len(set(served)) == REQUESTS
    assert {(ids[fid], used) for fid, used in served} <= kept
    assert "headers" in {s.source for s in samples}
    assert samples[-1].at - samples[0].at >= (REQUESTS - 1) * STEP - 1

    done = cli("status", "--json")
    assert done.returncode == 0, done.stderr
    forecast = json.loads(done.stdout)["forecast"]
    assert set(forecast) >= {"5h", "weekly"}
    short = forecast["5h"]
    assert set(short) == {"used_percent", "pace_percent_per_hour", "runs_out_at", "next_reset_at"}
    # 3 points per 15 s on one of two equal accounts: about 360 % of the pool per hour.
    assert short["pace_percent_per_hour"] is not None and short["pace_percent_per_hour"] > 100
    runs_out, reset = parse(short["runs_out_at"]), parse(short["next_reset_at"])
    assert runs_out is not None and reset is not None
    now = time.time()
    assert now < runs_out < now + 30 * 60  # 72 % of the pool's headroom left at that pace
    assert runs_out < reset  # ... long before the first account resets (in an hour)
    assert short["runs_out_at"].endswith("Z")
    assert 40 < short["used_percent"] < 100

    text = cli("status")
    assert text.returncode == 0, text.stderr
    line = next(x for x in text.stdout.splitlines() if x.startswith("Forecast:"))
    assert "5h" in line and "At this pace the pool's 5-hour quota runs out at" in line
    assert "before the next reset at" in line


def test_usage_lists_the_samples_per_account_and_the_pool(
        working_pool: tuple[Pool, list[tuple[str, float]]]) -> None:
    _pool, answers = working_pool
    served = [fid for fid, _ in answers]
    done = cli("usage", "--json", "--hours", "1")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    assert set(data["pool"]) >= {"5h", "weekly"}
    by_email = {a["email"]: a for a in data["accounts"]}
    assert set(by_email) == {"a@example.com", "b@example.com"}
    busiest = max(set(served), key=served.count)
    mine = by_email[f"{busiest}@example.com"]["samples"]["5h"]
    rising = [p["used_percent"] for p in mine]
    assert rising == sorted(rising) and rising[-1] > rising[0]
    assert {p["source"] for p in mine} <= {"headers", "usage"}
    assert all(p["at"].endswith("Z") and p["reset_at"].endswith("Z") for p in mine)
    pool_line = [p["used_percent"] for p in data["pool"]["5h"]]
    assert pool_line[-1] > pool_line[0]
    assert data["forecast"]["5h"]["runs_out_at"] is not None

    table = cli("usage", "--csv", "--hours", "1")
    assert table.returncode == 0, table.stderr
    rows = list(csv.reader(io.StringIO(table.stdout)))
    assert rows[0] == ["at", "series", "account_id", "email", "window", "used_percent", "reset_at", "source"]
    assert {r[1] for r in rows[1:]} == {"pool", "account"}
    assert any(r[3] == f"{busiest}@example.com" and r[7] in ("headers", "usage") for r in rows[1:])

    words = cli("usage", "--hours", "1")
    assert words.returncode == 0, words.stderr
    assert "At this pace the pool's 5-hour quota runs out at" in words.stdout
    assert f"{busiest}@example.com: 5h" in words.stdout


def test_usage_refuses_a_range_beyond_the_history(pool_home: Path) -> None:
    done = cli("usage", "--hours", "900")
    assert done.returncode == 1
    assert "--hours must be more than 0 and at most 840" in done.stderr
