"""The Settings page's save over the real API: the user's own config.toml keeps its comments, key
order, layout and unknown keys; only the lines of changed keys change; a refused save writes
nothing (byte for byte)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.apphost import running_engine
from tests.support.proxykit import Pool

# Written by hand: comments above and after values, odd spacing and quoting, a blank-line-free
# stretch, a multi-line array codex-pool does not know, dotted notification switches.
HAND_WRITTEN = """\
# My codex-pool setup -- keep these notes!
port = 0   # any free port, please

#   routing, tuned by hand
sticky-mode    =   'always'      # stay put
fast-mode-bias = 0.02
my-own-key = [ "kept",
               "as is" ]   # codex-pool does not know this
log-level = "info"
upstream-url = "{upstream}"
auth-url = "{auth}"

# notifications, dotted
notifications.quota-low = true   # I want these
notifications.needs-login = true
"""


@pytest.fixture
def pool(pool_home: Path) -> Iterator[Pool]:
    with running_engine() as running:
        yield running


@pytest.fixture
def api(pool: Pool) -> Iterator[httpx.Client]:
    engine = pool.engine
    with httpx.Client(
        base_url=engine.url + "/api", headers={"X-Codex-Pool-Token": engine.ui_token}, timeout=10
    ) as client:
        yield client


def hand_written(pool: Pool) -> Path:
    engine = pool.engine
    path: Path = engine.paths.config_file
    path.write_text(HAND_WRITTEN.format(upstream=engine.config.upstream_url, auth=engine.config.auth_url),
                    encoding="utf-8")
    engine.reload_config()
    return path


def as_the_page_sends(api: httpx.Client, **changes: Any) -> dict[str, Any]:
    """Every field's value as the Settings page shows it, with ``changes`` applied (the page sends
    every field on save, changed or not, except the read-only ones)."""
    shown = api.get("/settings").json()
    values: dict[str, Any] = {k: v for k, v in shown["values"].items() if k not in shown["file_only"]}
    for name, value in changes.items():
        key = name.replace("_", "-")
        if key.startswith("notifications-"):
            values["notifications"] = {**values["notifications"], key.removeprefix("notifications-"): value}
        else:
            values[key] = value
    return values


def test_a_save_keeps_every_comment_and_line_it_did_not_change(pool: Pool, api: httpx.Client) -> None:
    path = hand_written(pool)
    before = path.read_text(encoding="utf-8").splitlines()
    values = as_the_page_sends(api, sticky_mode="disabled", notifications_needs_login=False)
    answer = api.put("/settings", json={"values": values})
    assert answer.status_code == 200, answer.text
    after = path.read_text(encoding="utf-8").splitlines()
    changed = {i for i, (old, new) in enumerate(zip(before, after, strict=False)) if old != new}
    assert len(after) == len(before), after
    assert [after[i] for i in sorted(changed)] == [
        "sticky-mode    =   'disabled'      # stay put",  # its quoting kept too
        "notifications.needs-login = false",
    ]
    on_disk = tomllib.loads(path.read_text(encoding="utf-8"))
    assert on_disk["my-own-key"] == ["kept", "as is"]
    assert pool.engine.config.sticky_mode == "disabled"
    assert not pool.engine.config.notifications.needs_login and pool.engine.config.notifications.quota_low


def test_a_key_the_file_lacks_is_added_and_nothing_else_moves(pool: Pool, api: httpx.Client) -> None:
    path = hand_written(pool)
    before = path.read_text(encoding="utf-8")
    answer = api.put("/settings", json={"values": as_the_page_sends(api, quota_low_percent=25)})
    assert answer.status_code == 200, answer.text
    after = path.read_text(encoding="utf-8")
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == ["quota-low-percent = 25"]
    assert [line for line in after.splitlines() if line != "quota-low-percent = 25"] == before.splitlines()
    assert pool.engine.config.quota_low_percent == 25


def test_a_save_that_changes_nothing_leaves_the_file_alone(pool: Pool, api: httpx.Client) -> None:
    path = hand_written(pool)
    before = path.read_bytes()
    answer = api.put("/settings", json={"values": as_the_page_sends(api)})
    assert answer.status_code == 200, answer.text
    assert path.read_bytes() == before


def test_a_refused_save_changes_nothing_byte_for_byte(pool: Pool, api: httpx.Client) -> None:
    path = hand_written(pool)
    before = path.read_bytes()
    values = as_the_page_sends(api, sticky_mode="disabled", port=70000, host="10.1.2.3")
    answer = api.put("/settings", json={"values": values})
    assert answer.status_code == 400
    problems = answer.json()["problems"]
    assert set(problems) == {"port", "host"}
    assert problems["port"] == '"port" must be an integer from 0 to 65535 (got 70000).'
    assert "loopback" in problems["host"] and "allow-remote" in problems["host"]
    assert path.read_bytes() == before
    assert pool.engine.config.sticky_mode == "always"
