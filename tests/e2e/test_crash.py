"""Crashes and storage faults: ``kill -9`` of a ``codex-pool serve`` process after the token
endpoint redeemed a refresh token and in the middle of a stream, ``kill -9`` of a process inside a
store write transaction, another process holding the database write lock for 10 s, and a damaged
pool file. After each, the pool is intact (``PRAGMA integrity_check`` ok, every login still there
except the one a killed refresh took with it) and serves again."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth
from tests.fakes.locker import LockHolder
from tests.fakes.runner import ServerThread, serving
from tests.fakes.upstream import FakeChatGPT, make_chatgpt, replies
from tests.support.proxykit import CODEX_HEADERS, DEFAULT_CONFIG, add_account, codex_body, write_config
from tray.models import Account, AccountState
from tray.paths import api_key, resolve_paths
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]


# ---- helpers -----------------------------------------------------------------------------------


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    url: str
    log: Path

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@contextmanager
def serve(home: Path, log: Path) -> Iterator[Serve]:
    env = {**os.environ, "CODEX_POOL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    with log.open("a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tray", "serve", "--port", "0"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on " in line, log.read_text()
        yield Serve(proc, line.split("listening on ", 1)[1].strip(), log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class Rig:
    chatgpt: FakeChatGPT
    fake: ServerThread
    home: Path
    key: str
    accounts: dict[str, Account]

    @property
    def auth(self) -> FakeAuth:
        assert isinstance(self.chatgpt.auth, FakeAuth)
        return self.chatgpt.auth

    @property
    def db(self) -> Path:
        return self.home / "pool.db"

    def post(self, url: str, timeout: float = 90) -> httpx.Response:
        return httpx.post(f"{url}/backend-api/codex/responses", json=codex_body(), timeout=timeout,
                          trust_env=False, headers={**CODEX_HEADERS, "Authorization": f"Bearer {self.key}"})


@contextmanager
def rig(pool_home: Path, expires: dict[str, float]) -> Iterator[Rig]:
    """The fake chatgpt.com on loopback and a pool with one account per key of ``expires``
    (seconds until each access token expires; negative = already expired)."""
    chatgpt = make_chatgpt()
    auth = chatgpt.auth
    assert isinstance(auth, FakeAuth)
    with serving(chatgpt.app) as fake:
        write_config(pool_home, {**DEFAULT_CONFIG, "upstream-url": f"{fake.url}/backend-api",
                                 "auth-url": fake.url})
        paths = resolve_paths().ensure()
        with Store.open(paths.db_file) as store:
            accounts = {fid: add_account(store, auth, chatgpt.upstream, fid, expires_in=exp)
                        for fid, exp in expires.items()}
        yield Rig(chatgpt, fake, pool_home, api_key(paths), accounts)


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def snapshot(db: Path) -> list[tuple[Any, ...]]:
    """Every account as the user would see it, logins included."""
    with Store.open(db) as store:
        return [(a.id, a.identity, a.label, a.priority, a.primary, a.state, a.tokens)
                for a in store.accounts()]


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---- kill -9 of serve --------------------------------------------------------------------------


def test_kill_9_after_the_token_endpoint_redeemed_loses_that_login_and_nothing_else(
    pool_home: Path, tmp_path: Path
) -> None:
    # The one loss nothing can prevent: the token endpoint redeemed 'a''s refresh token (it does so
    # when the request arrives) and the process was killed before the answer came back, so the new
    # tokens existed only in that answer. The next process finds a spent token and says so.
    with rig(pool_home, {"a": -10, "b": 3600}) as r:
        r.auth.token_delay = 60.0  # the answer is still on its way when the process dies
        with serve(r.home, tmp_path / "serve.log") as first:
            # The proactive timer's first pass starts refreshing 'a' without any request.
            wait_for(lambda: r.auth.in_flight >= 1, 30, "the refresh to reach the token endpoint")
            first.kill9()
        assert integrity(r.db) == "ok"
        before = snapshot(r.db)
        assert [row[-2] for row in before] == [AccountState.ENABLED] * 2
        spent = before[0][-1].refresh_token in r.auth.consumed
        assert spent  # redeemed at the endpoint, yet still the stored one
        r.auth.token_delay = 0.0
        with serve(r.home, tmp_path / "serve.log") as second:
            # 'b' serves throughout; 'a' is refreshed once the dead process's lease lapses, is
            # answered refresh_token_reused, and needs a new login.
            assert r.post(second.url).headers["x-fake-account"] == "b"
            wait_for(lambda: snapshot(r.db)[0][-2] is AccountState.NEEDS_LOGIN, 90, "'a' to need a login")
            response = r.post(second.url)
            assert response.status_code == 200 and response.headers["x-fake-account"] == "b"
        assert "needs a new login" in second.log.read_text()
        assert r.auth.reuse_attempts == 1  # the spent token, presented once by a process that could not know
        assert integrity(r.db) == "ok"
        after = snapshot(r.db)
        assert len(after) == 2 and after[1] == before[1]  # 'b' untouched
        b_live = after[1][-1].refresh_token in r.auth.live
        assert b_live


def test_kill_9_mid_stream_is_a_broken_stream_and_the_pool_survives(pool_home: Path, tmp_path: Path) -> None:
    with rig(pool_home, {"a": 3600, "b": 3600}) as r:
        r.chatgpt.upstream.set_default("a", replies.ok(deltas=40, event_delay=0.1))
        r.chatgpt.upstream.set_default("b", replies.ok(deltas=40, event_delay=0.1))
        before = snapshot(r.db)
        with serve(r.home, tmp_path / "serve.log") as first:
            received = b""
            with pytest.raises(httpx.HTTPError), httpx.stream(
                "POST", f"{first.url}/backend-api/codex/responses", json=codex_body(), timeout=30,
                trust_env=False, headers={**CODEX_HEADERS, "Authorization": f"Bearer {r.key}"},
            ) as response:
                assert response.status_code == 200
                for chunk in response.iter_raw():
                    received += chunk
                    if b"output_text.delta" in received:
                        first.kill9()
            assert b"response.completed" not in received
        assert integrity(r.db) == "ok"
        assert snapshot(r.db) == before
        r.chatgpt.upstream.set_default("a", replies.ok())
        r.chatgpt.upstream.set_default("b", replies.ok())
        with serve(r.home, tmp_path / "serve.log") as second:
            response = r.post(second.url)
            assert response.status_code == 200 and b"response.completed" in response.content


# ---- kill -9 inside a store write --------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from tray.models import Identity, TokenSet
    from tray.store.accounts import Store

    store = Store.open(sys.argv[1])
    mode = sys.argv[2]
    if mode == "hold":  # one big transaction, killed before it commits
        with store.atomic():
            new = store.save_login(Identity("zz", "user-zz"), TokenSet("a-zz", "r-zz", None, 0.0), None, None)
            store.move(new.id, 0)
            for account in store.accounts():
                store.update_tokens(account.id, TokenSet("half", "written", None, 1.0))
                store.set_label(account.id, "half-written")
            print("inside", flush=True)
            time.sleep(60)
    else:  # rotate every account's tokens forever, each rotation one transaction
        n = 0
        print("writing", flush=True)
        while True:
            n += 1
            for account in store.accounts():
                store.update_tokens(account.id, TokenSet(f"access-{n}", f"refresh-{n}", None, float(n)))
    """
)


def writer(db: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), mode], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() in ("inside", "writing")
    return proc


def test_kill_9_inside_a_write_transaction_leaves_nothing_half_written(pool_home: Path) -> None:
    with rig(pool_home, {"a": 3600, "b": 3600, "c": 3600}) as r:
        before = snapshot(r.db)
        proc = writer(r.db, "hold")
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
        assert integrity(r.db) == "ok"
        assert snapshot(r.db) == before


def test_kill_9_at_random_moments_of_token_writes_keeps_every_login_whole(pool_home: Path) -> None:
    with rig(pool_home, {"a": 3600, "b": 3600}) as r:
        rng = random.Random(3)
        for _ in range(6):
            proc = writer(r.db, "rotate")
            time.sleep(rng.uniform(0.05, 0.4))
            proc.kill()
            proc.wait(10)
            assert proc.stdout is not None
            proc.stdout.close()
            assert integrity(r.db) == "ok"
            rows = snapshot(r.db)
            assert len(rows) == 2
            for row in rows:  # each token set is one whole rotation, never access of one, refresh of another
                tokens = row[-1]
                rotation = tokens.access_token.removeprefix("access-")
                assert tokens.refresh_token.removeprefix("refresh-") == rotation


# ---- the write lock held elsewhere -------------------------------------------------------------

def test_write_lock_held_for_10_s_by_another_process(pool_home: Path, tmp_path: Path) -> None:
    # 'b' needs a token refresh (a store write: the refresh lease) while the lock is held.
    with rig(pool_home, {"a": 3600, "b": -10}) as r, serve(r.home, tmp_path / "serve.log") as running:
        assert r.post(running.url).status_code == 200
        r.chatgpt.upstream.script("a", replies.usage_limit(resets_in=600, exhaust=False))  # a cooldown write
        holder = LockHolder(r.db, 10.0,
                            write="UPDATE accounts SET label = 'set by the other process' WHERE id = 1")
        holder.take()
        started = time.monotonic()
        answers: list[httpx.Response] = []
        while time.monotonic() - started < 10:
            answers.append(r.post(running.url, timeout=30))
        assert holder.wait_released(30)
        holder.close()
        for answer in answers:  # served, or a clear error naming the busy pool file
            assert answer.status_code == 200 or (
                answer.status_code == 503 and "busy" in answer.json()["error"]["message"]
                and answer.headers["retry-after"]
            ), (answer.status_code, answer.text)
        assert any(a.status_code == 200 for a in answers)
        # Afterwards: served again, nothing lost, the other process's change kept.
        after = [r.post(running.url) for _ in range(3)]
        assert [a.status_code for a in after] == [200] * 3
        assert integrity(r.db) == "ok"
        rows = snapshot(r.db)
        assert len(rows) == 2 and rows[0][2] == "set by the other process"
        assert all(row[-2] is AccountState.ENABLED for row in rows)
        assert r.auth.reuse_attempts == 0


# ---- a damaged pool file -----------------------------------------------------------------------


def damage(db: Path, page: int | None) -> bytes:
    """Garbage over one page of the file (``None``: the whole file is garbage); returns the bytes."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if page is None:
        db.write_bytes(random.Random(1).randbytes(8192))
    else:
        with db.open("r+b") as f:
            f.seek(4096 * (page - 1))
            f.write(b"\xff" * 512)
    return db.read_bytes()


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEX_POOL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tray", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=30)


def accounts_root_page(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'accounts'").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("where", ["whole file", "accounts table"])
def test_a_damaged_pool_file_is_named_kept_and_never_reset(pool_home: Path, where: str) -> None:
    with rig(pool_home, {"a": 3600, "b": 3600}) as r:
        page = None if where == "whole file" else accounts_root_page(r.db)
        damaged = damage(r.db, page)
        for args in (["serve", "--port", "0"], ["accounts"], ["status"]):
            done = run_cli(r.home, *args)
            assert done.returncode != 0, (args, done.stdout)
            assert str(r.db) in done.stderr and "damaged" in done.stderr, (args, done.stderr)
            assert "Traceback" not in done.stderr
            assert r.db.read_bytes() == damaged  # left exactly as it was, no fresh empty pool
        assert not any(p.name.startswith("pool.db") and p.name != "pool.db" and p.stat().st_size == 0
                       for p in r.home.iterdir())


def test_a_pool_damaged_only_in_its_activity_table_keeps_serving_and_says_so(
    pool_home: Path, tmp_path: Path
) -> None:
    with rig(pool_home, {"a": 3600, "b": 3600}) as r:
        conn = sqlite3.connect(r.db)
        page = int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'decisions'").fetchone()[0])
        conn.close()
        damaged = damage(r.db, page)
        with serve(r.home, tmp_path / "serve.log") as running:
            answers = [r.post(running.url) for _ in range(3)]
            assert [a.status_code for a in answers] == [200] * 3  # the accounts are fine: still served
            token = (r.home / "ui-token").read_text().strip()
            activity = httpx.get(running.url + "/api/activity", headers={"X-Codex-Pool-Token": token},
                                 trust_env=False)
            assert activity.status_code == 409 and str(r.db) in activity.text and "damaged" in activity.text
        assert str(r.db) in running.log.read_text() and "damaged" in running.log.read_text()
        # Nothing repaired or reset behind the user's back: the damaged page is still there.
        start = 4096 * (page - 1)
        assert r.db.read_bytes()[start:start + 512] == damaged[start:start + 512] == b"\xff" * 512
