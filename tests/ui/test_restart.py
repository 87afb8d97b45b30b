"""Settings that only apply when the proxy restarts (host, port, allow-remote), in headless Chromium
on a real engine listening on a real port: saving one says so and offers "Restart proxy now"; the
restart moves the proxy (and the window) to the new address; an address another program holds is
refused before anything stops; everything else is "saved and applied" at once."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.proxykit import write_config
from tests.support.uikit import NARROW, WIDE
from tests.ui.test_ui import open_page
from tray.engine import Engine
from tray.paths import resolve_paths

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def engine(pool_home: Path) -> Iterator[Engine]:
    """An engine as the tray runs it: on the port config.toml names, with no port given on a
    command line (so a restart takes the file's new one)."""
    write_config(pool_home, {"port": free_port()})
    running = Engine(resolve_paths(), import_primary=False)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=3, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["wide", "narrow"])
def test_a_new_port_says_it_waits_for_a_restart_and_restart_proxy_now_moves_there(
        browser: Any, engine: Engine, size: dict[str, int]) -> None:
    old = engine.url
    new_port = free_port()
    page = open_page(browser, engine, size=size, hash_page="settings")
    page.wait_for_selector("#f-port")
    page.fill("#f-port", str(new_port))
    page.click("#save")
    note = page.locator("#restart-note")
    note.wait_for()
    assert note.inner_text().startswith("Saved: the port takes effect when the proxy restarts.")
    assert page.locator("#toasts .toast").inner_text() == "Settings saved"  # not "saved and applied"
    assert engine.url == old and answers(old)  # nothing moved yet
    page.click("#restart-proxy")
    page.wait_for_url(f"http://127.0.0.1:{new_port}/ui/**")  # the window follows the proxy
    page.wait_for_selector("#f-port")
    assert page.input_value("#f-port") == str(new_port)
    assert not page.locator("#restart-note").is_visible()  # nothing waits any more
    page.wait_for_selector("#health:not([data-state='unknown']):not([data-state='signed-out'])")
    assert engine.url == f"http://127.0.0.1:{new_port}"
    assert answers(engine.url) and not answers(old)
    # Other settings apply as they are saved, and say so.
    page.select_option("#f-log-level", "warning")
    page.click("#save")
    page.locator("#toasts .toast", has_text="Settings saved and applied").wait_for()
    assert page.inner_text("#save-status") == "Saved and applied."
    assert not page.locator("#restart-note").is_visible()
    assert page.errors == []
    page.context.close()


def test_an_address_another_program_holds_is_refused_before_anything_stops(engine: Engine) -> None:
    old = engine.url
    api = httpx.Client(base_url=old + "/api", headers={"X-Codex-Pool-Token": engine.ui_token},
                       timeout=10, trust_env=False)
    with api, socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        taken = squatter.getsockname()[1]
        saved = api.put("/settings", json={"values": {"port": taken}})
        assert saved.status_code == 200 and saved.json()["pending_restart"] == ["port"]
        refused = api.post("/proxy/restart")
        assert refused.status_code == 409
        assert refused.json()["error"].startswith(f"Not restarted: Port {taken} on 127.0.0.1")
        assert engine.url == old and answers(old)  # still where it was
        assert api.get("/settings").json()["pending_restart"] == ["port"]


def test_allow_remote_restarts_in_place_and_the_window_keeps_its_session(browser: Any,
                                                                         engine: Engine) -> None:
    old = engine.url
    page = open_page(browser, engine, hash_page="settings")
    page.wait_for_selector("#f-allow-remote")
    page.check("#f-allow-remote")
    page.click("#save")
    note = page.locator("#restart-note")
    note.wait_for()
    assert note.inner_text().startswith(
        "Saved: allowing other machines takes effect when the proxy restarts.")
    page.click("#restart-proxy")
    page.locator("#toasts .toast", has_text="Proxy restarted").wait_for()
    assert page.url.startswith(old + "/ui/")  # the same address: the page stayed, with its session
    assert not note.is_visible()
    assert engine.url == old and answers(old) and engine.pending_restart() == []
    page.evaluate("location.hash = 'accounts'")
    page.wait_for_selector("#accounts")
    assert page.errors == []
    page.context.close()
