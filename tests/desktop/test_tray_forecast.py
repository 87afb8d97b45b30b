"""The forecast in the tray under Xvfb: the menu's top line, the icon turning degraded and the
``forecast`` notification (once) on the private session bus, when the usage history in the shared
pool file says the pool runs out before its next reset."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.desktop.test_tray import prepare_pool, start_tray, stop, tray_shot
from tests.fakes.seed import add_account, put_usage
from tests.support.gui_fixtures import DbusMenu, Notes
from tray.forecast.pace import clock_text
from tray.models import Account, UsageSample
from tray.store.accounts import Store

pytestmark = pytest.mark.gui

FIVE_H = 18000.0
TITLE = "codex-pool: the pool may run out before it resets"


def reading(account: Account, used: float, at: float, reset_at: float) -> UsageSample:
    return UsageSample(account.id, FIVE_H, used, reset_at, "headers", at)


def test_the_tray_warns_once_when_the_pool_runs_out_before_its_reset(
        tray_host: str, session_bus: str, notifications: Notes, tmp_path: Path) -> None:
    paths = prepare_pool()
    now = time.time()
    store = Store.open(paths.db_file)
    try:
        work = add_account(store, "work@x.com", plan="plus")
        spare = add_account(store, "spare@x.com", plan="plus")
        put_usage(store, work, 40, 20)  # the quota cache, so the tray's proxy has nothing to fetch
        put_usage(store, spare, 80, 30)
        # Two minutes of history with nothing spent: the pool lasts until its resets.
        store.record_samples([
            reading(work, 40, now - 120, now + 7200), reading(spare, 80, now - 120, now + 10800),
            reading(work, 40, now - 60, now + 7200), reading(spare, 80, now - 60, now + 10800)])
    finally:
        store.close()
    proc = start_tray(tray_host, session_bus)
    menu = DbusMenu(session_bus, proc.pid)
    try:
        layout = menu.layout(until=lambda m: any(x.startswith("Pool: 5h") for x in m.labels))
        assert layout.labels[:2] == ["All good", "Pool: 5h 60 % used"]
        tray_shot(tray_host, tmp_path / "lasting.png", "green")

        # Then work spends 30 points in a minute: 900 % of its window an hour, the pool's 50 points
        # of headroom last minutes, and the first reset is two hours away.
        store = Store.open(paths.db_file)
        try:
            store.record_samples([reading(work, 70, time.time(), now + 7200)])
        finally:
            store.close()
        layout = menu.layout(until=lambda m: "runs out" in m.labels[1])
        reset = clock_text(now + 7200, time.time())  # "16:10", or "Wed 00:10" after midnight
        when = r"(\w{3} )?\d\d:\d\d"
        assert layout.labels[0] == "The pool may run out before it resets"
        assert re.fullmatch(rf"Pool: 5h 75 % used · runs out {when}, before the {reset} reset",
                            layout.labels[1])
        assert layout.labels[2].startswith("Proxy http://127.0.0.1:")
        tray_shot(tray_host, tmp_path / "early.png", "amber")
        said = notifications.wait(where=lambda n: n["summary"] == TITLE)
        assert len(said) == 1
        assert re.fullmatch(rf"At this pace the pool's 5-hour quota runs out at {when}, "
                            rf"before the next reset \({reset}\)\.", said[0]["body"])
        time.sleep(5)  # two more polls of the store: still one episode, said once
        assert len([n for n in notifications.all() if n["summary"] == TITLE]) == 1
    finally:
        _code, err = stop(proc)
        assert "Traceback" not in err, err
