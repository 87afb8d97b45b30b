"""``codex-pool accounts|remove|enable|disable|label|priority|primary`` as a user runs them."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tray.cli import main
from tray.models import AccountState, Cooldown, Identity, TokenSet
from tray.paths import resolve_paths
from tray.store.accounts import Store

CLI = Path(sys.executable).parent / "codex-pool"


@pytest.fixture
def store(pool_home: Path) -> Iterator[Store]:
    s = Store.open(resolve_paths().db_file)
    yield s
    s.close()


def add(store: Store, name: str, plan: str = "plus") -> int:
    tokens = TokenSet(f"secret-access-{name}", f"secret-refresh-{name}", None, time.time() + 3600)
    return store.save_login(Identity(f"acc-{name}", "user"), tokens, f"{name}@example.com", plan).id


def usage(five_hour: float, weekly: float) -> str:
    return json.dumps({
        "plan_type": "plus",
        "rate_limit": {
            "allowed": True, "limit_reached": False,
            # Slots deliberately swapped: columns follow each window's length, not its slot name.
            "primary_window": {"used_percent": weekly, "limit_window_seconds": 604800,
                               "reset_after_seconds": 400000},
            "secondary_window": {"used_percent": five_hour, "limit_window_seconds": 18000,
                                 "reset_after_seconds": 3600},
        },
    })


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def names(store: Store) -> list[str]:
    return [a.name for a in store.accounts()]


def test_accounts_table_shows_role_state_and_quota_by_window_length(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = add(store, "a"), add(store, "b", "pro"), add(store, "c")
    store.put_usage(a, usage(five_hour=42, weekly=7), time.time())
    store.set_label(b, "Work")
    store.set_state(c, AccountState.NEEDS_LOGIN, "refresh_token_reused")
    store.set_cooldown(Cooldown(b, time.time() + 600, 429, "rate limited", "body"))
    code, out, err = run(capsys, "accounts")
    assert code == 0 and err == ""
    header, first, second, third = out.strip().splitlines()
    assert header.split() == ["#", "id", "account", "plan", "role", "state", "5h", "used", "weekly", "used"]
    assert first.split()[:6] == ["1", "1", "a@example.com", "plus", "primary", "enabled"]
    assert "42% (resets" in first and "7% (resets" in first
    assert "Work (b@example.com)" in second and "pool" in second and "cooling until" in second
    assert "rate limited" in second
    assert "needs login: refresh_token_reused" in third
    assert "secret" not in out


def test_accounts_json(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    a = add(store, "a")
    add(store, "b")
    store.put_usage(a, usage(five_hour=42, weekly=7), 1000.0)  # long ago: resets have passed
    code, out, _ = run(capsys, "accounts", "--json")
    data = json.loads(out)["accounts"]
    assert code == 0 and [r["position"] for r in data] == [1, 2]
    assert data[0]["email"] == "a@example.com" and data[0]["role"] == "primary"
    assert data[0]["quota"]["5h"]["window_seconds"] == 18000
    assert data[0]["quota"]["5h"]["used_percent"] == 0.0  # its reset passed: the window restarted
    assert data[1]["quota"] == {} and data[1]["quota_updated_at"] is None
    assert "secret" not in out


def test_an_account_at_its_limit_says_so(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    a = add(store, "a")
    payload = json.loads(usage(five_hour=100, weekly=30))
    payload["rate_limit"].update(allowed=False, limit_reached=True)
    store.put_usage(a, json.dumps(payload), time.time())
    code, out, _ = run(capsys, "accounts")
    assert code == 0 and "usage limit reached" in out and "100% (resets" in out
    code, out, _ = run(capsys, "accounts", "--json")
    assert json.loads(out)["accounts"][0]["exhausted"] is True


def test_an_empty_pool_says_how_to_add_one(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "accounts")
    assert code == 0 and "codex-pool login" in out


def test_disable_enable(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    a = add(store, "a")
    code, out, _ = run(capsys, "disable", "a@example.com")
    assert code == 0 and "Disabled a@example.com" in out
    assert store.get(a).state is AccountState.DISABLED  # type: ignore[union-attr]
    code, out, _ = run(capsys, "enable", "1")
    assert code == 0 and store.get(a).state is AccountState.ENABLED  # type: ignore[union-attr]


def test_enable_refuses_an_account_that_needs_login(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    a = add(store, "a")
    store.set_state(a, AccountState.NEEDS_LOGIN, "invalid_grant")
    code, _, err = run(capsys, "enable", "a@example.com")
    assert code == 1 and "codex-pool login" in err and err.count("\n") == 1
    assert store.get(a).state is AccountState.NEEDS_LOGIN  # type: ignore[union-attr]


def test_label_priority_primary(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    for n in "abc":
        add(store, n)
    assert run(capsys, "label", "c@example.com", "Spare")[0] == 0
    assert names(store) == ["a@example.com", "b@example.com", "Spare"]
    code, out, _ = run(capsys, "priority", "Spare", "1")
    assert code == 0 and "now #1" in out
    assert names(store) == ["Spare", "a@example.com", "b@example.com"]
    code, out, _ = run(capsys, "primary", "b@example.com")
    assert code == 0 and "primary" in out
    assert names(store) == ["b@example.com", "Spare", "a@example.com"]
    assert [a.primary for a in store.accounts()] == [True, False, False]
    assert run(capsys, "label", "Spare", "")[0] == 0
    assert names(store)[1] == "c@example.com"


def test_remove_needs_yes_without_a_terminal(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    add(store, "a")
    b = add(store, "b")
    assert not sys.stdin.isatty()  # pytest's stdin
    code, _, err = run(capsys, "remove", "b@example.com")
    assert code == 1 and "--yes" in err and store.get(b) is not None
    code, out, _ = run(capsys, "remove", "b@example.com", "--yes")
    assert code == 0 and "Removed b@example.com" in out and store.get(b) is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["disable", "nobody@example.com"], 'No account matches "nobody@example.com"'),
        (["priority", "a@example.com", "9"], "Position must be from 1 to 2"),
        (["label", "a@example.com", "x" * 101], "at most 100 characters"),
        (["disable", "1"], "matches several accounts"),
    ],
)
def test_user_mistakes_are_one_line(
    store: Store, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    add(store, "a")
    b = add(store, "b")
    store.move(b, 0)  # position 1 is now "b" while id 1 is "a": "1" is ambiguous
    before = store.accounts()
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("codex-pool: ") and message in err and err.count("\n") == 1
    assert store.accounts() == before


def test_the_installed_command_lists_and_removes(store: Store) -> None:
    add(store, "a")
    b = add(store, "b")
    listed = subprocess.run(
        [CLI, "accounts", "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert [r["email"] for r in json.loads(listed.stdout)["accounts"]] == ["a@example.com", "b@example.com"]
    refused = subprocess.run([CLI, "remove", "2"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and "--yes" in refused.stderr
    assert store.get(b) is not None


def _remove_on_a_terminal(answer: str) -> tuple[int, str]:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([CLI, "remove", "b@example.com"], stdin=follower, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        os.write(leader, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    return proc.returncode, out


def test_remove_asks_on_a_terminal(store: Store) -> None:
    add(store, "a")
    b = add(store, "b")
    code, out = _remove_on_a_terminal("n")
    assert code == 1 and "Remove b@example.com from the pool?" in out and "Nothing removed" in out
    assert store.get(b) is not None
    code, out = _remove_on_a_terminal("y")
    assert code == 0 and "Removed b@example.com" in out and store.get(b) is None
