"""Security probes against a running proxy: the bind address, the two doors (local client key for
the proxy, management token for ``/api``), DNS-rebinding ``Host`` and foreign ``Origin`` (CORS
preflight included) on every route, secrets that must never surface (logs, the activity view,
error bodies, even when upstream or the token endpoint echo them), and file permissions.

Already covered elsewhere and not repeated here: the access rules as pure functions
(test_access.py), the management door's basics (test_api.py), the key on the Codex route and the
engine-level bind refusal (test_proxy_e2e_surface.py), and the soak's search of logs, management
answers and error bodies for every token issued during 1,000 requests (test_soak.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.auth_server import FakeAuth
from tests.fakes.upstream import replies
from tests.support.proxykit import CODEX_HEADERS, Pool, codex_body, running_pool
from tray.config import save_config
from tray.models import AccountState
from tray.paths import resolve_paths
from tray.store.accounts import Store

ROOT = Path(__file__).resolve().parents[2]
WRONG = "cpk-not-the-key-4f9a2c"

PROXY_ROUTES = [
    ("POST", "/backend-api/codex/responses"),
    ("POST", "/backend-api/codex/responses/compact"),
    ("GET", "/backend-api/codex/models"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
]
API_ROUTES = [
    ("GET", "/api/status"),
    ("GET", "/api/accounts"),
    ("GET", "/api/activity"),
    ("PATCH", "/api/accounts/1"),
    ("DELETE", "/api/accounts/2"),
    ("POST", "/api/accounts/2/move"),
    ("POST", "/api/accounts/2/primary"),
    ("POST", "/api/accounts/1/relogin"),
    ("POST", "/api/login/device"),
    ("GET", "/api/settings"),
    ("PUT", "/api/settings"),
    ("GET", "/api/clients"),
    ("POST", "/api/clients/codex/apply"),
    ("GET", "/api/autostart"),
    ("PUT", "/api/autostart"),
]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    # One running engine for the door probes (each test's own HOME isolation is not needed: the
    # module fixture gets its own folder below).
    mp = pytest.MonkeyPatch()
    with tempfile.TemporaryDirectory(prefix="codex-pool-security-") as tmp:
        for var, sub in (("HOME", "home"), ("CODEX_HOME", "home/.codex"), ("XDG_CONFIG_HOME", "home/.config"),
                         ("XDG_DATA_HOME", "home/.local/share"), ("CODEX_POOL_HOME", "pool")):
            mp.setenv(var, str(Path(tmp) / sub))
        try:
            with running_pool(["a", "b"]) as running:
                # The proxy fetches every account's quota as it starts: let that finish, so the
                # probes below can tell that nothing of theirs went upstream.
                deadline = time.monotonic() + 20
                while not all(running.engine.store.usage(a.id) for a in running.accounts.values()):
                    assert time.monotonic() < deadline, "the quota fetches at start did not finish"
                    time.sleep(0.05)
                yield running
        finally:
            mp.undo()


def state(pool: Pool) -> list[tuple[object, ...]]:
    return [(a.id, a.label, a.priority, a.primary, a.state, a.tokens) for a in pool.engine.store.accounts()]


def forwarded(pool: Pool) -> list[object]:
    """What upstream got that a client's request could have caused: everything but the quota
    service's own usage polls, which go on in the background (every account, every few minutes)."""
    return [r for r in pool.upstream.requests if "/wham/usage" not in r.path]


def send(pool: Pool, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = json.dumps(codex_body()) if method not in ("GET", "DELETE", "OPTIONS") else None
    with httpx.Client(base_url=pool.url, timeout=10, trust_env=False) as client:
        return client.request(method, path, content=body,
                              headers={"content-type": "application/json", **headers})


# ---- the doors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROXY_ROUTES)
def test_proxy_routes_refuse_no_key_a_wrong_key_and_the_management_token(
    pool: Pool, method: str, path: str
) -> None:
    before, upstream_calls = state(pool), len(forwarded(pool))
    for headers in ({}, {"Authorization": f"Bearer {WRONG}"}, {"x-api-key": WRONG},
                    {"Authorization": f"Bearer {pool.engine.ui_token}"},
                    {"X-Codex-Pool-Token": pool.engine.ui_token},
                    {"Authorization": f"Basic {pool.engine.api_key}"}):
        answer = send(pool, method, path, {**CODEX_HEADERS, **headers})
        assert answer.status_code == 401, (headers.keys(), answer.status_code)
        assert pool.engine.ui_token not in answer.text and WRONG not in answer.text
    assert len(forwarded(pool)) == upstream_calls  # nothing went upstream
    assert state(pool) == before


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_management_routes_refuse_no_token_a_wrong_one_and_the_client_key(
    pool: Pool, method: str, path: str
) -> None:
    before = state(pool)
    for headers in ({}, {"X-Codex-Pool-Token": WRONG}, {"Authorization": f"Bearer {pool.engine.api_key}"},
                    {"x-api-key": pool.engine.api_key}, {"X-Codex-Pool-Token": pool.engine.api_key}):
        answer = send(pool, method, path, headers)
        assert answer.status_code in (401, 403), (headers.keys(), answer.status_code)
        assert pool.engine.api_key not in answer.text and WRONG not in answer.text
    assert state(pool) == before


FOREIGN = [
    {"Host": "evil.example"},
    {"Host": "evil.example:{port}"},
    {"Host": "127.0.0.1.evil.example:{port}"},
    {"Host": "127.0.0.1:1"},  # right address, another port
    {"Origin": "http://evil.example"},
    {"Origin": "https://127.0.0.1:{port}"},
    {"Origin": "http://127.0.0.1:{port}.evil.example"},
    {"Origin": "null"},
]


@pytest.mark.parametrize(("method", "path"), PROXY_ROUTES + API_ROUTES + [("GET", "/ui/")])
def test_dns_rebinding_and_foreign_origins_are_refused_with_valid_credentials(
    pool: Pool, method: str, path: str
) -> None:
    port = pool.url.rsplit(":", 1)[1]
    creds = {"Authorization": f"Bearer {pool.engine.api_key}", "X-Codex-Pool-Token": pool.engine.ui_token}
    before, upstream_calls = state(pool), len(forwarded(pool))
    for foreign in FOREIGN:
        headers = {k: v.format(port=port) for k, v in foreign.items()}
        answer = send(pool, method, path, {**CODEX_HEADERS, **creds, **headers})
        assert answer.status_code in (400, 403, 421), (headers, answer.status_code)
        assert "access-control-allow-origin" not in answer.headers
    assert len(forwarded(pool)) == upstream_calls
    assert state(pool) == before


@pytest.mark.parametrize(("method", "path"), PROXY_ROUTES + API_ROUTES)
def test_cors_preflight_is_never_granted(pool: Pool, method: str, path: str) -> None:
    for origin in ("http://evil.example", f"http://127.0.0.1:{pool.url.rsplit(':', 1)[1]}"):
        answer = send(pool, "OPTIONS", path, {
            "Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, x-codex-pool-token",
        })
        assert answer.status_code in (400, 401, 403, 404, 405), (origin, answer.status_code)
        assert "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-headers" not in answer.headers


def test_healthz_tells_nothing_secret(pool: Pool) -> None:
    answer = httpx.get(pool.url + "/healthz", trust_env=False)
    assert answer.status_code == 200
    assert pool.engine.api_key not in answer.text and pool.engine.ui_token not in answer.text


# ---- secrets that upstream or the token endpoint echo ----------------------------------------------


def everything_visible(pool: Pool, answers: list[httpx.Response]) -> str:
    """Everything a user or a client can see: answers, the management views, the log files."""
    headers = {"X-Codex-Pool-Token": pool.engine.ui_token}
    views = [httpx.get(pool.url + p, headers=headers, trust_env=False).text
             for p in ("/api/activity?limit=1000", "/api/accounts", "/api/status")]
    paths = resolve_paths()
    logs = [f.read_text("utf-8", "replace") for f in paths.log_dir.rglob("*") if f.is_file()]
    shown = [a.text for a in answers] + [json.dumps(dict(a.headers)) for a in answers]
    return "\n".join(shown + views + logs)


def test_tokens_echoed_by_upstream_or_the_token_endpoint_never_surface(
    pool_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    with running_pool(["a", "b"]) as pool:
        auth = pool.auth
        assert isinstance(auth, FakeAuth)
        a, b = pool.account("a"), pool.account("b")
        secrets = {t for acc in (a, b) for t in (acc.tokens.access_token, acc.tokens.refresh_token)}
        # Upstream answers 401 for 'a' with its token in the body; the refresh that follows is refused
        # with the refresh token echoed in the description: 'a' needs a login, 'b' serves.
        pool.upstream.revoke_token(a.tokens.access_token)
        auth.refresh_failures.append((400, {"error": "invalid_grant",
                                            "error_description": f"refresh token {a.tokens.refresh_token} "
                                                                 f"for {a.tokens.access_token} is invalid"}))
        answers = [pool.post()]
        assert answers[0].status_code == 200 and pool.served_by(answers[0]) == "b"
        assert pool.account("a").state is AccountState.NEEDS_LOGIN
        # Now 'b' fails in ways that put text from upstream into errors: a 5xx and an HTML 403.
        pool.upstream.script("b", replies.server_error(503), replies.html_403())
        answers += [pool.post(), pool.post()]
        pool.wait_bookkeeping()
        secrets |= {t for acc in pool.engine.store.accounts() for t in
                    (acc.tokens.access_token, acc.tokens.refresh_token, acc.tokens.id_token or "") if t}
        seen = everything_visible(pool, answers) + "\n" + caplog.text + "\n" + repr(pool.events)
        for secret in secrets:
            assert secret not in seen
            if secret.count(".") == 2:
                assert secret.rsplit(".", 1)[0] not in seen


# ---- bind address --------------------------------------------------------------------------------


def run_serve(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CODEX_POOL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tray", "serve", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_serve_refuses_a_non_loopback_address_unless_the_config_allows_it(pool_home: Path) -> None:
    for host in ("0.0.0.0", "::"):
        proc = run_serve(pool_home, "--host", host, "--port", "0")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode != 0, out
        assert "allow-remote" in err and "Traceback" not in err
        assert "listening" not in out
    save_config(pool_home / "config.toml", {"allow-remote": True})
    proc = run_serve(pool_home, "--host", "0.0.0.0", "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        port = line.rsplit(":", 1)[1].strip()
        key = (pool_home / "api-key").read_text().strip()
        # Even open to the network, the local key is still required.
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False).status_code == 401
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False,
                           headers={"Authorization": f"Bearer {key}"})
        assert models.status_code != 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)


# ---- file permissions ----------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_files_are_0600_and_their_folders_0700_whatever_the_umask(pool_home: Path) -> None:
    old = os.umask(0)  # the most permissive umask: modes must not depend on it
    try:
        with running_pool(["a", "b"]) as pool:
            assert pool.post().status_code == 200
            pool.wait_bookkeeping()
            paths = pool.engine.paths
            secrets = [paths.db_file, Path(f"{paths.db_file}-wal"), Path(f"{paths.db_file}-shm"),
                       paths.api_key_file, paths.ui_token_file, paths.instance_file]
            for path in secrets:
                assert path.exists(), path
                assert mode(path) == 0o600, (path, oct(mode(path)))
            for folder in {paths.data_dir, paths.config_dir, paths.log_dir}:
                assert mode(folder) == 0o700, (folder, oct(mode(folder)))
            config = paths.config_file.read_text()
            assert pool.engine.api_key not in config and pool.engine.ui_token not in config
            for account in pool.engine.store.accounts():
                assert account.tokens.refresh_token not in config
    finally:
        os.umask(old)


def test_a_migration_backup_and_its_folder_are_private_whatever_the_umask(pool_home: Path) -> None:
    old = os.umask(0)
    try:
        resolve_paths().ensure()
        db = pool_home / "pool.db"
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE legacy (x INTEGER)")  # an older file holding data: it is backed up
        conn.commit()
        conn.close()
        with Store.open(db) as store:
            copy = store.backup_made
        assert copy is not None
        assert mode(copy) == 0o600 and mode(copy.parent) == 0o700
        assert mode(db) == 0o600 and mode(pool_home) == 0o700
    finally:
        os.umask(old)


def test_the_setup_backup_folder_is_private_whatever_the_umask(pool_home: Path, isolated_home: Path) -> None:
    from tests.e2e.test_security_local import free_port
    from tray.cli import main

    codex_config = isolated_home / ".codex" / "config.toml"
    codex_config.parent.mkdir(parents=True)
    codex_config.write_text('model = "gpt-5"\n')
    resolve_paths().ensure().config_file.write_text(f"port = {free_port()}\n")
    old = os.umask(0o022)  # the usual umask: folders come out 0755 unless made private on purpose
    try:
        assert main(["setup", "codex"]) == 0
    finally:
        os.umask(old)
    backups = resolve_paths().backup_dir
    assert mode(backups) == 0o700, oct(mode(backups))
    assert all(mode(f) == 0o600 for f in backups.iterdir())


def test_an_existing_open_backup_folder_is_made_private(pool_home: Path) -> None:
    backups = resolve_paths().ensure().backup_dir
    os.chmod(backups, 0o755)  # as earlier versions left it
    resolve_paths().ensure()
    assert mode(backups) == 0o700


def test_the_management_token_window_codes_and_sessions_are_masked_in_logs() -> None:
    from tray.api.sessions import Sessions
    from tray.logs import redact

    sessions = Sessions()
    code = sessions.mint()
    session = sessions.redeem(sessions.mint())
    token = "cpmt-" + "x" * 40
    text = redact(f"opened /ui/#code={code}, session {session}, token {token}")
    assert code not in text and str(session) not in text and token not in text
    assert "cpc-[redacted]" in text and "cps-[redacted]" in text and "cpmt-[redacted]" in text


def test_a_management_token_that_went_into_window_addresses_is_replaced(pool_home: Path) -> None:
    from tray.paths import ui_token

    paths = resolve_paths().ensure()
    old = "cpui-" + "o" * 43  # what earlier versions put in every window address (and history)
    paths.ui_token_file.write_text(old + "\n")
    token = ui_token(paths)
    assert token.startswith("cpmt-") and token != old
    assert ui_token(paths) == token and mode(paths.ui_token_file) == 0o600
