"""The tray icon: a pystray adapter that shows a :class:`~tray.desktop.menu.MenuModel` and reports clicks.

It never sees the store. The app hands it a menu model, a health state and a tooltip through
:meth:`TrayIcon.update` (from any thread) and gets each clicked item's action back through the
``on_action`` callback (on the GUI thread: keep it short, hand real work to a worker). Every change
to the icon runs on the backend's own thread, through one dispatcher (:mod:`tray.desktop.backend`).

Linux: pystray's xorg backend has no menu and never receives clicks, so we pick the AppIndicator
backend (which also docks in plain XEmbed trays and exports its menu over D-Bus), else GTK, never
xorg. pystray's backend is chosen by ``PYSTRAY_BACKEND`` *at import time*, and its xorg backend
opens the display on import, so :func:`select_backend` must run before ``import pystray``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import Any

from tray.desktop.backend import Dispatcher, dispatcher_for, fit_tooltip
from tray.desktop.icon import render
from tray.desktop.menu import Action, MenuItem, MenuModel, layout_key
from tray.health import Health

log = logging.getLogger(__name__)

OnAction = Callable[[Action, int | None], None]
Env = MutableMapping[str, str]
ICON_SIZE = 64


def _has_typelib(namespace: str, version: str) -> bool:
    try:
        import gi

        gi.require_version(namespace, version)
        __import__(f"gi.repository.{namespace}")
    except (ImportError, ValueError):
        return False
    return True


def select_backend(environ: Env | None = None, platform: str = sys.platform) -> str | None:
    """Choose pystray's backend and put it in ``PYSTRAY_BACKEND``; ``None`` when no usable one exists
    (on Linux: neither AppIndicator nor GTK 3 can be loaded)."""
    env = os.environ if environ is None else environ
    if platform in ("darwin", "win32"):
        return "darwin" if platform == "darwin" else "win32"
    chosen = env.get("PYSTRAY_BACKEND", "")
    if chosen and chosen != "xorg":
        return chosen
    if not _has_typelib("Gtk", "3.0"):
        return None
    if _has_typelib("AyatanaAppIndicator3", "0.1") or _has_typelib("AppIndicator3", "0.1"):
        chosen = "appindicator"
    else:
        chosen = "gtk"
    env["PYSTRAY_BACKEND"] = chosen
    return chosen


def _libraries_problem(modules: tuple[str, ...], what: str) -> str | None:
    """Whether the platform's GUI bindings import; a broken install says which and why."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            return f"{what} failed to load ({name}: {exc})"
    return None


def gui_problem(environ: Env | None = None, platform: str = sys.platform) -> str | None:
    """Why the tray cannot run here, in a few words, or ``None`` when it can."""
    env = os.environ if environ is None else environ
    if platform == "darwin":  # pystray's backend and the window's both sit on pyobjc
        return _libraries_problem(("AppKit", "Foundation", "PyObjCTools.AppHelper", "pystray"),
                                  "pyobjc (the macOS GUI bindings)")
    if platform == "win32":
        return _libraries_problem(("pystray",), "the tray library")
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return "no display"
    if select_backend(env, platform) is None:
        return "GTK 3 (python3-gi, gir1.2-gtk-3.0) is not installed"
    if not env.get("DBUS_SESSION_BUS_ADDRESS") and not os.path.exists(f"/run/user/{_uid()}/bus"):
        return "no D-Bus session bus"
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk

        if not Gtk.init_check([])[0]:
            return f"cannot open the display {env.get('DISPLAY') or env.get('WAYLAND_DISPLAY')}"
        import pystray  # noqa: F401
    except Exception as exc:
        return f"the tray libraries failed to load ({exc})"
    return None


def _uid() -> int:
    if sys.platform == "win32":
        return 0
    return os.getuid()


def copy_to_clipboard(text: str) -> None:
    """Put ``text`` on the clipboard (call on the GUI thread)."""
    if sys.platform == "darwin":
        subprocess.run(["pbcopy"], input=text, text=True, check=False, timeout=5)
    elif sys.platform == "win32":  # without CREATE_NO_WINDOW a console window flashes up
        subprocess.run(["clip"], input=text, text=True, check=False, timeout=5,
                       creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    else:
        import gi

        gi.require_version("Gdk", "3.0")
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gdk, Gtk

        clipboard = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD)
        clipboard.set_text(text, -1)
        clipboard.store()


GTK_BACKENDS = ("appindicator", "gtk")  # the backends whose menu is a Gtk.Menu we can edit in place
Path = tuple[int, ...]  # an item's place in the menu: indexes from the top level down


def _icon_class(pystray: Any) -> Any:
    class Icon(pystray.Icon):  # type: ignore[misc]  # pystray has no type information
        """pystray's icon, except that it builds its menu only when it is given a new one.

        pystray rebuilds the whole menu after every click. A rebuilt AppIndicator menu gets new
        D-Bus ids, and a tray host that still shows the old menu has its next click refused
        ("does not refer to a menu item we have"): the click is lost. :class:`TrayIcon` keeps
        the menu current itself, so a rebuild for an unchanged menu is skipped.
        """

        _built: object = None
        _menu_open = False  # Windows: the menu is on screen (see backend.Win32Dispatcher)
        _after_menu: Callable[[], None] | None = None

        def update_menu(self) -> None:
            if self.menu is not self._built:
                self._built = self.menu
                super().update_menu()

        if hasattr(pystray.Icon, "_on_notify"):  # the Windows backend (and fakes of it)

            def _on_notify(self, wparam: int, lparam: int) -> Any:
                # A right click shows the menu in a modal loop on this thread, which still
                # dispatches our posted updates: they wait until the menu is closed.
                self._menu_open = True
                try:
                    return super()._on_notify(wparam, lparam)
                finally:
                    self._menu_open = False
                    if self._after_menu is not None:
                        self._after_menu()

    return Icon


def _sync_gtk(menu: Any, old: tuple[MenuItem, ...], new: tuple[MenuItem, ...]) -> bool:
    """Bring a Gtk.Menu built from ``old`` up to ``new`` (same :func:`~tray.desktop.menu.layout_key`) by
    editing its items in place; False when the widgets do not match ``old`` (then rebuild)."""
    widgets = menu.get_children()
    if len(widgets) != len(old):
        return False
    for widget, before, item in zip(widgets, old, new, strict=True):
        if item.separator:
            continue
        if item.submenu:
            submenu = widget.get_submenu()
            if submenu is None or not _sync_gtk(submenu, before.submenu, item.submenu):
                return False
        if item.text != before.text:
            if item.default:  # pystray shows the default item in bold
                from gi.repository import GLib

                widget.get_child().set_markup(f"<b>{GLib.markup_escape_text(item.text)}</b>")
            else:
                widget.set_label(item.text)
        if item.enabled != before.enabled:
            widget.set_sensitive(item.enabled)
        if item.checked is not None and item.checked != before.checked:
            widget.set_active(item.checked)  # emits "activate": TrayIcon ignores it while syncing
    return True


class TrayIcon:
    """The icon and its menu. Create and :meth:`run` on the main thread."""

    def __init__(self, on_action: OnAction, *, name: str = "codex-pool",
                 dispatcher: Callable[[Any], Dispatcher] | None = None, platform: str = sys.platform) -> None:
        import pystray

        self._pystray: Any = pystray
        self._on_action = on_action
        self._platform = platform
        self._shown: tuple[MenuModel, Health, str] | None = None
        self._lock = threading.Lock()
        self._menu: MenuModel | None = None  # the model on screen (GUI thread only)
        self._syncing = False  # GUI thread only: set while items are edited in place
        # AppIndicator needs a non-empty menu with a default item from the start, or it never shows.
        starting = pystray.Menu(pystray.MenuItem("codex-pool is starting…", lambda *_: None, enabled=False,
                                                 default=True))
        self._icon: Any = _icon_class(pystray)(name.replace("-", "_"), render("stopped", ICON_SIZE),
                                               "codex-pool", starting)
        self.backend = type(self._icon).__mro__[1].__module__.rsplit("._", 1)[-1]
        self._dispatch: Dispatcher = (dispatcher or self._default_dispatcher)(self._icon)
        run_queued = getattr(self._dispatch, "run_queued", None)
        if run_queued is not None:
            self._icon._after_menu = run_queued

    def _default_dispatcher(self, icon: Any) -> Dispatcher:
        return dispatcher_for(self.backend, icon)

    def run(self, on_ready: Callable[[], None]) -> None:
        """Show the icon and run the GUI loop until :meth:`stop`. ``on_ready`` runs once the icon
        is up, on a pystray helper thread."""

        def setup(icon: Any) -> None:  # on a pystray helper thread
            self._dispatch(lambda: self._show(icon))
            on_ready()

        try:
            self._icon.run(setup=setup)
        except Exception as exc:
            # pystray's GTK backends close their own notification on the way out and raise when
            # no notification service runs; the icon is gone by then, so this is only worth a log.
            log.warning("tray loop ended with an error: %s", exc)

    def update(self, model: MenuModel, state: Health, tooltip: str) -> None:
        """Show a new menu, state and tooltip (any thread; a no-op when nothing changed)."""
        with self._lock:
            if self._shown == (model, state, tooltip):
                return
            old, self._shown = self._shown, (model, state, tooltip)
        self._dispatch(lambda: self._apply(old, model, state, tooltip))

    def _show(self, icon: Any) -> None:
        if self.backend == "darwin":  # a menu-bar app: no Dock icon (a source run would show Python's)
            import AppKit

            AppKit.NSApplication.sharedApplication().setActivationPolicy_(
                AppKit.NSApplicationActivationPolicyAccessory)
        icon.visible = True

    def _apply(self, old: tuple[MenuModel, Health, str] | None, model: MenuModel, state: Health,
               tooltip: str) -> None:
        if old is None or old[1] != state:
            self._icon.icon = render(state, ICON_SIZE)
        if old is None or old[2] != tooltip:
            self._icon.title = fit_tooltip(tooltip, self._platform)  # Windows: 127 characters at most
            status_icon = getattr(self._icon, "_status_icon", None)  # GTK backend: a real tooltip
            if status_icon is not None:
                status_icon.set_tooltip_text(tooltip)
        if self._menu != model:
            self._show_menu(model)

    def _show_menu(self, model: MenuModel) -> None:
        """Put ``model`` on screen (GUI thread). When only texts and states changed, the items are
        edited in place: a click the tray host sends for the menu it showed a moment ago still
        finds its item. Otherwise the menu is built anew."""
        shown, self._menu = self._menu, model
        handle = getattr(self._icon, "_menu_handle", None) if self.backend in GTK_BACKENDS else None
        if shown is not None and handle is not None and layout_key(shown.items) == layout_key(model.items):
            self._syncing = True
            try:
                if _sync_gtk(handle, shown.items, model.items):
                    return
            finally:
                self._syncing = False
        self._icon.menu = self._pystray.Menu(*self._items(model.items, ()))

    def _item(self, path: Path) -> MenuItem | None:
        """The item at ``path`` in the menu on screen."""
        items = self._menu.items if self._menu is not None else ()
        item = None
        for index in path:
            if index >= len(items):
                return None
            item = items[index]
            items = item.submenu
        return item

    def _items(self, items: tuple[MenuItem, ...], parent: Path) -> list[Any]:
        # Texts and states are read from the menu on screen when pystray asks, so a rebuild by
        # pystray itself never brings back texts that were since edited in place.
        pystray = self._pystray
        out: list[Any] = []
        for index, item in enumerate(items):
            path = (*parent, index)
            if item.separator:
                out.append(pystray.Menu.SEPARATOR)
            elif item.submenu:
                out.append(pystray.MenuItem(self._text(path), pystray.Menu(*self._items(item.submenu, path)),
                                            enabled=self._enabled(path)))
            else:
                checked = None if item.checked is None else self._checked(path)
                out.append(pystray.MenuItem(self._text(path), self._handler(path), checked=checked,
                                            enabled=self._enabled(path), default=item.default))
        return out

    def _text(self, path: Path) -> Callable[[Any], str]:
        return lambda _item: (found.text if (found := self._item(path)) else "")

    def _enabled(self, path: Path) -> Callable[[Any], bool]:
        return lambda _item: bool((found := self._item(path)) and found.enabled)

    def _checked(self, path: Path) -> Callable[[Any], bool]:
        return lambda _item: bool((found := self._item(path)) and found.checked)

    def _handler(self, path: Path) -> Callable[[Any, Any], None]:
        def clicked(_icon: Any, _item: Any) -> None:
            item = self._item(path)
            if self._syncing or item is None or item.action is None or not item.enabled:
                return  # a check item set in place, or an item that cannot be used now
            try:
                self._on_action(item.action, item.arg)
            except Exception:
                log.exception("menu action %s failed", item.action)

        return clicked

    def stop(self) -> None:
        """End the GUI loop (any thread)."""
        self._dispatch(self._icon.stop)
