"""The package's shape (docs/architecture.md), enforced by walking ``tray/``.

* Every folder of ``tray/`` is a room, and every top-level module is a room of its own. :data:`ROOMS`
  says which other rooms each may import; a new room is one new row (and a line of the folder map).
* Another room is reached through its public face: ``from tray.quota import parse_usage``, never
  ``from tray.quota.cache import ...``. The face is the room's ``__init__``. Two exceptions: a pure
  module imports other pure modules directly (a face would load the room's adapters with it), and
  the ``app`` command reaches the desktop's modules itself (the GUI loads only when the tray starts).
  ``commands`` has no face: :mod:`tray.cli` dispatches to each command module.
* The pure core (:data:`PURE`) imports only the standard library and other pure modules.
* No import cycle between modules, counting imports under ``TYPE_CHECKING``, imports inside
  functions and ``importlib.import_module("tray....")`` loads.
* Only the desktop room (and the ``app`` command) imports GUI libraries; no module is over 400 lines.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tray"

LEAVES = {"errors", "models"}  # every room may import these
ROOMS: dict[str, set[str]] = {
    "": set(),  # the package itself (``__version__``)
    "__main__": {"cli"},
    "errors": set(),
    "models": set(),
    "paths": set(),
    "config": {"paths"},
    "logs": {"paths"},
    "portholder": set(),
    "store": set(),
    "quota": {"store"},
    "routing": {"quota"},
    "forecast": {"quota", "routing"},
    "health": {"forecast"},
    "auth": {"paths", "portholder"},
    "clients": {"paths"},
    "autostart": {"paths"},
    "proxy": {"quota", "routing", "store"},
    "api": {"autostart", "clients", "config", "forecast", "health", "paths", "portholder", "proxy", "quota",
            "store"},
    "server": {"config", "portholder", "proxy"},
    "engine": {"api", "auth", "config", "paths", "proxy", "quota", "server", "store"},
    "notices": {"forecast", "health"},
    # the desktop never touches the store: the app hands its parts models and callbacks
    "desktop": {"autostart", "engine", "forecast", "health", "notices", "paths", "quota"},
    "commands": {"api", "auth", "autostart", "clients", "config", "desktop", "engine", "forecast", "health",
                 "logs", "notices", "paths", "portholder", "quota", "store"},
    "cli": {"commands"},
}

# The pure core: decisions as plain functions over data, ``now`` passed in.
PURE = {
    "errors", "models", "health",
    "config.keys", "config.text",
    "routing", "routing.ranking", "routing.scoring", "routing.affinity", "routing.fastmode",
    "routing.cooldown",
    "quota.usage", "quota.signals", "quota.backoff",
    "forecast.pool", "forecast.pace",
    "auth.pkce", "auth.claims",
    "proxy.access", "proxy.shaping", "proxy.sse", "proxy.chatrequest", "proxy.chatanswer", "proxy.egress",
    "proxy.contentcoding", "proxy.frames", "proxy.owners", "proxy.body",
    "api.sessions", "api.views",
    "clients.texts", "autostart.texts",
    "notices.alerts", "desktop.menu",
}
IMPURE_STDLIB = {"sqlite3", "socket", "subprocess", "asyncio", "shutil", "http", "urllib.request",
                 "multiprocessing", "ctypes", "signal", "fcntl", "msvcrt", "tempfile", "importlib"}
PURE_LIBRARIES = {"tomlkit", "zstandard", "msgspec"}  # text (or bytes) in, text, bytes or values out
PURE_EXCEPTIONS = {("autostart.texts", "subprocess")}  # list2cmdline: Windows quoting, no process
GUI_LIBRARIES = ("pystray", "webview", "PIL", "gi", "AppKit", "Foundation", "PyObjCTools")
GUI_MODULES = {"desktop.icon", "desktop.tray", "desktop.backend", "desktop.window", "desktop.app",
               "commands.app"}
MAX_LINES = 400
FACE_EXCEPTIONS = {("commands.app", "desktop")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def room_of(name: str) -> str:
    return name.split(".")[0]


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth (``TYPE_CHECKING`` and
    function bodies too) and every ``importlib.import_module("...")`` with a literal name. A
    ``from package import name`` that names a module counts as that module."""
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(["tray", *package, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                local = sub.removeprefix("tray.") if sub.startswith("tray.") else None
                found.append((sub if local in known else base, node.lineno))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, node.lineno))
    return list(dict.fromkeys(found))


def local(imported: str) -> str | None:
    if imported == "tray":
        return ""
    return imported.removeprefix("tray.") if imported.startswith("tray.") else None


def graph() -> dict[str, list[tuple[str, int]]]:
    found = modules()
    known = set(found)
    edges: dict[str, list[tuple[str, int]]] = {}
    for name, path in found.items():
        edges[name] = [(target, line) for imported, line in imports(name, path, known)
                       if (target := local(imported)) is not None]
    return edges


def where(name: str, line: int) -> str:
    return f"tray/{modules()[name].relative_to(PACKAGE)}:{line}"


def test_every_room_has_a_row() -> None:
    missing = sorted({room_of(name) for name in modules()} - set(ROOMS))
    assert not missing, f"rooms without a row in ROOMS (tests/test_layers.py): {missing}"


def test_rooms_import_only_what_their_row_allows() -> None:
    problems = []
    for name, targets in graph().items():
        mine = room_of(name)
        allowed = ROOMS.get(mine, set()) | LEAVES | {mine}
        for target, line in targets:
            theirs = room_of(target) if target else ""
            if theirs not in allowed and target != "":
                problems.append(f"{where(name, line)}: {name} ({mine}) imports tray.{target} ({theirs})")
    assert not problems, "\n".join(problems)


def test_other_rooms_are_reached_through_their_face() -> None:
    found = modules()
    faces = {name for name, path in found.items() if path.name == "__init__.py"} - {"commands"}
    problems = []
    for name, targets in graph().items():
        for target, line in targets:
            theirs = room_of(target)
            if (name, theirs) in FACE_EXCEPTIONS or (name in PURE and target in PURE):
                continue
            if theirs != room_of(name) and theirs in faces and target != theirs:
                problems.append(f"{where(name, line)}: {name} imports tray.{target}; use tray.{theirs}")
    assert not problems, "\n".join(problems)


def test_the_pure_core_stays_pure() -> None:
    found = modules()
    problems = []
    for name in sorted(PURE):
        assert name in found, f"PURE names {name}, which does not exist"
        for imported, line in imports(name, found[name], set(found)):
            target = local(imported)
            top = imported.split(".")[0]
            if target is not None:
                if target not in PURE and target != "":
                    problems.append(f"{where(name, line)}: pure {name} imports tray.{target}")
            elif (name, imported) in PURE_EXCEPTIONS or top in PURE_LIBRARIES:
                continue
            elif top not in sys.stdlib_module_names or imported in IMPURE_STDLIB or top in IMPURE_STDLIB:
                problems.append(f"{where(name, line)}: pure {name} imports {imported}")
    assert not problems, "\n".join(problems)


def cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, []):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    edges = {name: sorted({t for t, _ in targets} - {""}) for name, targets in graph().items()}
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_cycle_finder_sees_a_cycle_through_type_checking(tmp_path: Path) -> None:
    """Guard the test itself: a cycle that exists only under TYPE_CHECKING is still a cycle."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from tray.b import B\n")
    (pkg / "b.py").write_text("import importlib\nimportlib.import_module('tray.a')\n")
    known = {"a", "b"}
    edges = {n: [t for i, _ in imports(n, pkg / f"{n}.py", known) if (t := local(i))] for n in known}
    assert cycles(edges) == [["a", "b"]]


def test_only_the_desktop_imports_gui_libraries() -> None:
    found = modules()
    problems = [
        f"{where(name, line)} imports {imported}"
        for name, path in found.items()
        if name not in GUI_MODULES
        for imported, line in imports(name, path, set(found))
        if imported.split(".")[0] in GUI_LIBRARIES
    ]
    assert not problems, f"only {sorted(GUI_MODULES)} may import GUI libraries:\n" + "\n".join(problems)


def test_no_module_is_over_400_lines() -> None:
    long = {f"tray/{p.relative_to(PACKAGE)}": n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines): {long}"


def test_the_package_root_holds_at_most_12_modules() -> None:
    own = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(own) <= 12, own


def test_the_walker_sees_relative_and_from_imports(tmp_path: Path) -> None:
    """Guard the test itself: it must resolve the import forms the package uses."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    source = (
        "from tray import paths, __version__\nfrom . import texts\nfrom .models import Account\n"
        "import PIL.Image\n"
    )
    (pkg / "__init__.py").write_text(source)
    got = [i for i, _ in imports("autostart", pkg / "__init__.py", {"paths", "autostart.texts", "models"})]
    assert got == ["tray.paths", "tray", "tray.autostart.texts", "tray.autostart.models", "PIL.Image"]


def test_the_cli_imports_without_a_display_or_gui_libraries() -> None:
    code = (
        "import sys\n"
        "import tray.cli\n"
        "tray.cli.build_parser()\n"  # imports every command module
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {GUI_LIBRARIES!r}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
