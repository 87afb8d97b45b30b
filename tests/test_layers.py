"""The import direction between layers (docs/architecture.md), enforced by walking ``tray/``.

Every module must appear in :data:`LAYERS`. A new module is one new line there: pick the lowest
layer whose modules it needs. Imports may point to the same layer or lower, never higher.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tray"

L0, L1, L2, L2_5, L3, L4, L5 = 0.0, 1.0, 2.0, 2.5, 3.0, 4.0, 5.0
LAYER_NAMES = {L0: "L0 data", L1: "L1 pure logic", L2: "L2 adapters", L2_5: "L2.5 services",
               L3: "L3 service", L4: "L4 GUI adapters", L5: "L5 composition"}

# Module (dotted, without the ``tray.`` prefix) → layer. ``commands.*`` covers every command.
LAYERS: dict[str, float] = {
    # L0: data, stdlib only
    "": L0,  # the package itself (``__version__``)
    "errors": L0,
    "models": L0,
    # L1: pure logic, time passed in
    "routing": L1,
    "scoring": L1,
    "affinity": L1,
    "fastmode": L1,
    "cooldown": L1,
    "quota": L1,
    "signals": L1,  # live rate-limit signals → usage payloads (re-exported by quota)
    "pkce": L1,
    "claims": L1,
    "sse": L1,
    "menu": L1,
    "alerts": L1,
    "autostart.texts": L1,
    "clientconfig": L1,
    "access": L1,  # local key / Host / Origin checks
    "sessions": L1,  # window codes, sessions, the owner's challenge proofs (pure state)
    "shaping": L1,  # request/response shaping for the upstream
    "backoff": L1,  # exponential backoff per key (usage retries)
    "poolview": L1,  # the pool's levels and used % from the usage history
    "forecast": L1,  # pace and runout of the pool
    # L2: adapters (files, SQLite, HTTP, OS)
    "paths": L2,
    "config": L2,
    "store": L2,
    "database": L2,  # the store's connection and transactions
    "sharedstate": L2,  # the store's cooldowns, quota cache, leases, dormant touches, decisions
    "migrations": L2,
    "history": L2,  # the store's usage samples
    "oauth": L2,
    "usage": L2,
    "transport": L2,
    "decoding": L2,
    "authfiles": L2,
    "clients": L2,
    "notify": L2,
    "autostart": L2,
    "autostart._linux": L2,
    "autostart._macos": L2,
    "autostart._windows": L2,
    "instance": L2,
    "portholder": L2,  # which program holds a port (/proc, lsof, netstat)
    "owner": L2,  # the CLI's side of the owner's challenge
    "logs": L2,  # log file + stderr handlers, secret redaction
    "browser": L2,  # opening a page in the user's browser (the browser sign-in)
    # L2.5: services over adapters
    "refresh": L2_5,
    "lease": L2_5,  # the refresh lease: take, heartbeat, confirm, release
    "tokencommit": L2_5,  # storing an answered token set until it is stored
    "login": L2_5,
    "quotaservice": L2_5,
    "quotacache": L2_5,  # usage views and live signals; the base of quotaservice
    "outlook": L2_5,  # history and forecasts read from the store, shaped for the surfaces
    # L3: the running service
    "proxy": L3,
    "api": L3,
    "apiguard": L3,
    "apilogin": L3,
    "apisetup": L3,
    "apiviews": L3,
    "apiui": L3,  # the window page: static files and the headers that guard them
    "apisession": L3,  # window codes, sessions and the owner's challenge over HTTP
    "apiusage": L3,  # the Usage page's data and the quota fetch state
    "apirestart": L3,  # restarting the proxy for the settings that apply then
    "server": L3,
    "limits": L3,  # header timeout and size, connection cap, the process's own limits
    "engine": L3,
    "pipeline": L3,
    "planner": L3,
    "attempts": L3,
    "pooled": L3,
    "relay": L3,
    "answers": L3,
    # L4: GUI adapters (never the store)
    "icon": L4,
    "trayicon": L4,
    "window": L4,
    # L5: composition
    "app": L5,
    "cli": L5,
    "commands": L5,
    "commands.*": L5,
    "__main__": L5,
}

GUI_LIBRARIES = ("pystray", "webview", "PIL", "gi")
GUI_MODULES = {"icon", "trayicon", "window", "app", "commands.app"}
STORE_MODULES = {"store", "database", "sharedstate", "migrations", "history"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(name: str) -> float | None:
    if name in LAYERS:
        return LAYERS[name]
    if "." in name:
        parent = name.rsplit(".", 1)[0]
        return LAYERS.get(f"{parent}.*")
    return None


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file; tray modules without the prefix."""
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
    return list(dict.fromkeys(found))


def local(imported: str) -> str | None:
    if imported == "tray":
        return ""
    return imported.removeprefix("tray.") if imported.startswith("tray.") else None


def test_every_module_has_a_layer() -> None:
    missing = sorted(name for name in modules() if layer_of(name) is None)
    assert not missing, (
        f"modules without a layer: {missing}; add each to LAYERS in tests/test_layers.py "
        "(and to the table in docs/architecture.md)"
    )


def test_imports_point_down() -> None:
    found = modules()
    known = set(found)
    problems = []
    for name, path in found.items():
        mine = layer_of(name)
        if mine is None:
            continue
        for imported, line in imports(name, path, known):
            target = local(imported)
            if target is None:
                continue
            theirs = layer_of(target)
            where = f"tray/{path.relative_to(PACKAGE)}:{line}"
            if theirs is None:
                problems.append(f"{where} imports tray.{target}, which has no layer")
            elif theirs > mine:
                problems.append(
                    f"{where}: {name or 'tray'} ({LAYER_NAMES[mine]}) imports tray.{target} "
                    f"({LAYER_NAMES[theirs]})"
                )
            elif mine == L4 and target in STORE_MODULES:
                problems.append(f"{where}: GUI module {name} imports tray.{target}; pass it a model instead")
    assert not problems, "\n".join(problems)


def test_only_gui_modules_import_gui_libraries() -> None:
    found = modules()
    problems = [
        f"tray/{path.relative_to(PACKAGE)}:{line} imports {imported}"
        for name, path in found.items()
        if name not in GUI_MODULES
        for imported, line in imports(name, path, set(found))
        if imported.split(".")[0] in GUI_LIBRARIES
    ]
    assert not problems, "only icon, trayicon, window and app may import GUI libraries:\n" + "\n".join(
        problems
    )


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
