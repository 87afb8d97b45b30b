"""The tray process: the proxy engine, the tray icon, notifications and the pool window, wired.

Threads (each has one owner and one door in):

* **main**: the GUI loop (pystray on GTK/AppIndicator). Menu clicks arrive here; anything slower
  than a clipboard copy is queued for the worker.
* **proxy** (daemon, owned by the engine): uvicorn and its asyncio loop. Engine events arrive from
  it (or from the thread that loaded the config) and are queued for the worker, never handled there.
* **tray-worker**: owns the :class:`~tray.notices.alerts.Alerts` state and runs every job in order: menu
  actions (store edits, autostart, logins), engine events, and a poll of the shared store every
  :data:`POLL_SECONDS` that rebuilds the menu model and hands it to the GUI thread through
  :meth:`TrayIcon.update` (``GLib.idle_add``). Polling the store rather than listening to this
  process alone means a change made by the CLI or another proxy shows up too.
* **notify** (inside :class:`~tray.notices.delivery.DesktopNotifier`) and **instance** (answers a
  second start).

The pool window is a child process (:class:`~tray.desktop.window.WindowProcess`).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from tray import autostart
from tray.desktop.browser import system_opener
from tray.desktop.icon import state_icons
from tray.desktop.instance import Instance
from tray.desktop.menu import Action, build_menu, tooltip
from tray.desktop.opener import open_path
from tray.desktop.signals import SignalWatcher
from tray.desktop.tray import TrayIcon, copy_to_clipboard
from tray.desktop.window import WindowProcess
from tray.engine import Engine
from tray.errors import PoolError
from tray.forecast import forecasts
from tray.health import Health, Snapshot, health, snapshot_of
from tray.models import Account, AccountState, Clock, Event
from tray.notices import KINDS, OPEN_CONFIG, OPEN_WINDOW, RELOGIN, Alerts, DesktopNotifier, Notice, Notifier
from tray.paths import Paths
from tray.quota import shown_usage

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
START_RETRY_FIRST = 3.0  # a proxy that could not start is tried again, waiting this long, doubling...
START_RETRY_MAX = 30.0  # ...to this (quit and start again: the old instance may still hold the port)
Job = Callable[[], None]


class TrayApp:
    """One tray process. ``run()`` on the main thread; returns the exit code."""

    def __init__(self, paths: Paths, instance: Instance, *, clock: Clock = time.time,
                 notifier: Notifier | None = None, window: WindowProcess | None = None) -> None:
        self.paths = paths
        self.clock = clock
        self._instance = instance
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._notifier = notifier
        self._window = window or WindowProcess(log=paths.log_dir / "window.log")
        self._alerts = Alerts()
        self._start_error: str | None = None  # why the proxy is not running (None while it runs)
        self._start_brief: str | None = None  # the same in a few words, for the menu
        self._start_wait = START_RETRY_FIRST
        self._next_start = 0.0  # time.monotonic() of the next try
        self._tray: TrayIcon | None = None
        self._worker = threading.Thread(target=self._work, name="tray-worker", daemon=True)
        self.engine = Engine(paths, clock=clock, events=self._on_event, open_browser=system_opener())

    # ---- lifecycle (main thread) -----------------------------------------------------------------

    def run(self) -> int:
        if self._notifier is None:
            self._notifier = DesktopNotifier(icon=self._icons(), on_action=self._on_notice_action)
        self._start_proxy()
        watcher = None
        try:
            self._tray = TrayIcon(self._on_action)
            if sys.platform in ("darwin", "win32"):  # Linux: GLib takes the signals (_on_ready)
                watcher = SignalWatcher(self.quit)
            self._worker.start()
            self._instance.serve(self._on_command)
            self._tray.run(on_ready=self._on_ready)
        finally:
            if watcher is not None:
                watcher.close()
            self._shutdown()
        return 0

    def _icons(self) -> dict[Health, Path] | Path | None:
        """The notifications' icons, one per pool state (drawn into the data folder); the packaged
        icon when they cannot be written."""
        try:
            return state_icons(self.paths.data_dir / "icons")
        except OSError as exc:
            log.warning("notification icons not written: %s", exc)
        from importlib import resources

        packaged = resources.files("tray") / "assets" / "codex-pool.png"
        return Path(str(packaged)) if packaged.is_file() else None

    def _start_proxy(self) -> None:
        """Start the engine. When it cannot start (the port is taken, or still held by the instance
        that just quit), the tray stays up, says why in its menu, and tries again later
        (:meth:`_retry_start`); the first failure and the recovery are notified."""
        try:
            self.engine.start()
        except PoolError as exc:
            if self._start_error is None:
                self._notify(Notice("error", "codex-pool: the proxy did not start", str(exc),
                                    state="stopped"))
            self._start_error = str(exc)
            self._start_brief = getattr(exc, "brief", None) or str(exc).split(". ", 1)[0]
            log.warning("The proxy did not start (trying again in %.0f s): %s", self._start_wait, exc)
            self._next_start = time.monotonic() + self._start_wait
            self._start_wait = min(self._start_wait * 2, START_RETRY_MAX)
            return
        if self._start_error is not None:
            self._notify(Notice("error", "codex-pool: the proxy is running",
                                f"Listening on {self.engine.url}.", state="healthy"))
        self._start_error = self._start_brief = None
        self._start_wait = START_RETRY_FIRST

    def _retry_start(self, *, now: bool = False) -> None:
        """Worker thread: try the proxy again when it is not running and its wait is over."""
        if self._start_error is not None and (now or time.monotonic() >= self._next_start):
            self._start_proxy()

    def _on_ready(self) -> None:
        if sys.platform not in ("darwin", "win32"):
            import signal

            from gi.repository import GLib

            # pystray resets SIGINT to "kill at once"; stop cleanly on Ctrl+C and SIGTERM instead.
            for sig in (signal.SIGINT, signal.SIGTERM):
                GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, self._on_signal)
        self._jobs.put(self._refresh)

    def _on_signal(self) -> bool:
        self.quit()
        return False

    def quit(self) -> None:
        if self._tray is not None:
            self._tray.stop()

    def _shutdown(self) -> None:
        self._jobs.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout=10)
        self._window.close()
        self.engine.stop()  # in-flight streams finish (grace period) before the loop closes
        if self._notifier is not None:
            self._notifier.close()
        self._instance.close()

    # ---- inputs from other threads -------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Engine event sink: called on the proxy thread; never blocks."""
        self._jobs.put(partial(self._handle_event, event))

    def _on_command(self, command: str) -> str:
        """A second ``codex-pool`` start asks us to show the window (instance thread)."""
        if command.split(" ", 1)[0] == "show":
            self._jobs.put(self._open_window)
            return "ok"
        return "unknown"

    def _on_notice_action(self, key: str) -> None:
        """A notification's button (on the notifier's listener thread): the same as the menu's."""
        if key == OPEN_WINDOW:
            self._jobs.put(partial(self._do, Action.OPEN_WINDOW, None))
        elif key == OPEN_CONFIG:
            self._jobs.put(partial(self._do, Action.OPEN_CONFIG, None))
        elif key.startswith(RELOGIN) and key.removeprefix(RELOGIN).isdigit():
            self._jobs.put(partial(self._do, Action.RELOGIN, int(key.removeprefix(RELOGIN))))

    def _on_action(self, action: Action, arg: int | None) -> None:
        """A menu click, on the GUI thread."""
        if action is Action.QUIT:
            self.quit()
        elif action is Action.COPY_URL:
            if self.engine.server is not None:
                copy_to_clipboard(self.engine.url)
        else:
            self._jobs.put(partial(self._do, action, arg))

    # ---- the worker ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=POLL_SECONDS)
            except queue.Empty:
                job = self._refresh
            if job is None:
                return
            try:
                job()
            except PoolError as exc:
                self._notify(Notice("error", "codex-pool", str(exc)))
            except Exception:
                log.exception("tray job failed")
            if job != self._refresh and self._jobs.empty():  # bound methods: compare with ==
                self._refresh_safely()

    def _refresh_safely(self) -> None:
        try:
            self._refresh()
        except Exception:
            log.exception("could not refresh the tray menu")

    def _notify(self, notice: Notice) -> None:
        if self._notifier is not None:
            self._notifier.notify(notice)

    def _handle_event(self, event: Event) -> None:
        for notice in self._alerts.on_event(event, self.clock()):
            self._notify(notice)

    def snapshot(self) -> Snapshot:
        """The pool as the menu, the tooltip and the notices see it, shaped as every surface shapes
        it (:func:`tray.health.snapshot_of`), with what only the tray knows added."""
        engine, now = self.engine, self.clock()
        store = engine.store
        accounts = store.accounts()
        usages = store.usages()
        decisions = store.decisions(1)
        try:
            start_at_login: bool | None = autostart.enabled()
        except PoolError:
            start_at_login = None
        running = engine.server is not None
        shaped = snapshot_of(accounts, {a.id: shown_usage(usages.get(a.id)) for a in accounts},
                             store.cooldowns(now), now, running=running,
                             config_problems=engine.loaded.messages, forecasts=forecasts(store, now).values())
        return replace(shaped, proxy_url=engine.url if running else None, autostart=start_at_login,
                       last_decision=decisions[0] if decisions else None,
                       start_problem=None if running else self._start_brief,
                       notice_problem=self._notifier.problem if self._notifier is not None else None)

    def _refresh(self) -> None:
        self._retry_start()
        config = self.engine.config
        self._alerts.set_switches({kind: config.notifications.enabled(kind) for kind in KINDS})
        self._alerts.low_percent = config.quota_low_percent
        snap = self.snapshot()
        notices = self._alerts.on_config(snap.config_problems, str(self.paths.config_file))
        notices += self._alerts.observe(snap)
        for notice in notices:
            self._notify(notice)
        if self._tray is not None:
            text = tooltip(snap)
            if self._start_error:
                text += f"\n{self._start_error}"
            self._tray.update(build_menu(snap), health(snap), text)

    # ---- menu actions (worker thread) ------------------------------------------------------------

    def _do(self, action: Action, arg: int | None) -> None:
        store = self.engine.store
        if action is Action.OPEN_WINDOW:
            self._open_window()
        elif action is Action.OPEN_USAGE:
            self._open_window("usage")
        elif action is Action.OPEN_CONFIG:
            open_path(self.paths.config_file, on_failure=self._cannot_open)
        elif action is Action.TOGGLE_AUTOSTART:
            autostart.disable() if autostart.enabled() else autostart.enable()
        elif action is Action.ADD_BROWSER:
            self._browser_login()
        elif action is Action.RETRY_START:
            self._retry_start(now=True)
        elif action is Action.ADD_DEVICE:
            self._open_window("add&start=device")  # the window starts the flow and shows the code
        elif arg is None:
            return
        elif action is Action.MAKE_PRIMARY:
            store.set_primary(arg)
        elif action in (Action.MOVE_UP, Action.MOVE_DOWN):
            account = store.get(arg)
            if account is not None:
                step = -1 if action is Action.MOVE_UP else 1
                count = len(store.accounts())
                store.move(arg, max(0, min(count - 1, account.priority + step)))
        elif action is Action.ENABLE:
            store.set_state(arg, AccountState.ENABLED, None)
        elif action is Action.DISABLE:
            store.set_state(arg, AccountState.DISABLED, "disabled from the tray")
        elif action is Action.RELOGIN:
            self._open_window(f"add/relogin={arg}")
        elif action is Action.REMOVE:
            self._open_window("accounts")  # the window asks for confirmation before removing

    def _cannot_open(self, message: str) -> None:
        """The opener said no (on its waiting thread): tell the user what to do instead."""
        notice = Notice("error", "codex-pool: the config file did not open", message,
                        actions=((OPEN_WINDOW, "Open pool window"),))
        self._jobs.put(partial(self._notify, notice))

    def _open_window(self, page: str | None = None) -> None:
        if self.engine.server is None:
            return
        if self._window.open(self.engine.ui_url, page):
            # A window that cannot start (no WebKit, a broken display) dies within a second or two;
            # look again later without holding up the worker.
            timer = threading.Timer(3.0, self._jobs.put, args=(self._check_window,))
            timer.daemon = True
            timer.start()

    def _check_window(self) -> None:
        reason = self._window.failed(within=0)
        if reason is not None:
            raise PoolError(f"The pool window could not open ({reason}). "
                            "The same page works in a browser: see 'codex-pool status --json'.")

    def _browser_login(self) -> None:
        login: Any = self.engine.login
        if login is None or self.engine.server is None:
            self._open_window("add")
            return
        started = time.time()
        ticket = self.engine.submit(login.start_browser()).result(timeout=30)  # it opens the browser

        def done(future: Any) -> None:
            try:
                account = future.result()
            except Exception as exc:
                notice = Notice("login", "codex-pool: sign-in did not finish", str(exc))
            else:
                notice = signed_in(account, started)
            self._jobs.put(partial(self._notify, notice))

        self.engine.submit(login.wait(ticket.id)).add_done_callback(done)


def signed_in(account: Account, started: float) -> Notice:
    """The notice after a sign-in from the tray: an account that was in the pool before the sign-in
    started was signed in again, not added."""
    if account.created_at < started:
        return Notice("login", f"codex-pool: signed in again as {account.name}", "It is back in routing.",
                      state="healthy")
    return Notice("login", "codex-pool: account added", f"{account.name} is in the pool now.",
                  state="healthy")
