"""One-off: move tray/ and tests/ into rooms and rewrite every reference (issue 11)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODULES = {
    # quota
    "quota": "quota.usage", "signals": "quota.signals", "usage": "quota.fetcher",
    "quotacache": "quota.cache", "quotaservice": "quota.service", "backoff": "quota.backoff",
    # routing (pure core)
    "routing": "routing.rank", "scoring": "routing.scoring", "affinity": "routing.affinity",
    "fastmode": "routing.fastmode", "cooldown": "routing.cooldown",
    # store
    "store": "store.accounts", "database": "store.connection", "migrations": "store.migrations",
    "sharedstate": "store.shared", "history": "store.history",
    # auth
    "pkce": "auth.pkce", "claims": "auth.claims", "oauth": "auth.oauth", "refresh": "auth.refresh",
    "lease": "auth.lease", "tokencommit": "auth.tokencommit", "login": "auth.login",
    "authfiles": "auth.files",
    # proxy
    "proxy": "proxy.routes", "access": "proxy.access", "shaping": "proxy.shaping",
    "pipeline": "proxy.pipeline", "planner": "proxy.plan", "attempts": "proxy.attempt",
    "relay": "proxy.relay", "sse": "proxy.sse", "pooled": "proxy.pooled", "answers": "proxy.answers",
    "decoding": "proxy.decoding", "transport": "proxy.transport", "limits": "proxy.limits",
    # api
    "api": "api.routes", "apiguard": "api.guard", "apilogin": "api.login", "apisetup": "api.setup",
    "apiviews": "api.views", "apiui": "api.ui", "apisession": "api.session", "apiusage": "api.usage",
    "sessions": "api.sessions", "owner": "api.owner",
    # clients
    "clientconfig": "clients.texts", "clients": "clients.files",
    # notices
    "alerts": "notices.alerts", "notify": "notices.delivery",
    # desktop
    "app": "desktop.app", "menu": "desktop.menu", "icon": "desktop.icon", "trayicon": "desktop.tray",
    "window": "desktop.window", "instance": "desktop.instance",
    # forecast
    "poolview": "forecast.pool", "forecast": "forecast.pace", "outlook": "forecast.outlook",
}
ROOMS = sorted({new.split(".")[0] for new in MODULES.values()})

TESTS = {
    "test_access": "proxy/test_access", "test_affinity": "routing/test_affinity",
    "test_alerts": "notices/test_alerts", "test_api": "api/test_api", "test_app": "desktop/test_app",
    "test_authfiles": "auth/test_files", "test_autostart": "autostart/test_autostart",
    "test_autostart_texts": "autostart/test_texts", "test_bookkeeping": "proxy/test_bookkeeping",
    "test_claims": "auth/test_claims", "test_cli_accounts": "commands/test_accounts",
    "test_cli_config": "commands/test_config", "test_cli_login": "commands/test_login",
    "test_cli_serve": "commands/test_serve", "test_cli_status": "commands/test_status",
    "test_client_setup": "clients/test_setup", "test_clientconfig": "clients/test_texts",
    "test_clients": "clients/test_files", "test_opencode": "e2e/test_opencode",
    "test_cooldown": "routing/test_cooldown", "test_crash": "e2e/test_crash",
    "test_database": "store/test_connection", "test_decoding": "proxy/test_decoding",
    "test_fake_upstream": "fakes/test_upstream", "test_fastmode": "routing/test_fastmode",
    "test_forecast": "forecast/test_pace", "test_forecast_e2e": "e2e/test_forecast",
    "test_forecast_tray": "desktop/test_forecast", "test_fuzz": "proxy/test_fuzz",
    "test_history": "store/test_history", "test_icon": "desktop/test_icon",
    "test_instance": "desktop/test_instance", "test_login": "auth/test_login",
    "test_menu": "desktop/test_menu", "test_migrations": "store/test_migrations",
    "test_notify": "notices/test_delivery", "test_oauth": "auth/test_oauth", "test_pkce": "auth/test_pkce",
    "test_planner": "proxy/test_plan", "test_pooled": "proxy/test_pooled",
    "test_proxy_e2e": "e2e/test_proxy", "test_proxy_e2e_bounds": "e2e/test_bounds",
    "test_proxy_e2e_failover": "e2e/test_failover", "test_proxy_e2e_headers": "e2e/test_headers",
    "test_proxy_e2e_leaving": "e2e/test_leaving", "test_proxy_e2e_processes": "e2e/test_processes",
    "test_proxy_e2e_store": "e2e/test_store", "test_proxy_e2e_surface": "e2e/test_surface",
    "test_proxy_e2e_wire": "e2e/test_wire", "test_quota": "quota/test_usage",
    "test_quota_background": "quota/test_background", "test_quota_newcomers": "quota/test_newcomers",
    "test_quota_outage": "quota/test_outage", "test_quotaservice": "quota/test_service",
    "test_refresh": "auth/test_refresh", "test_refresh_faults": "auth/test_refresh_faults",
    "test_refresh_proxy": "e2e/test_refresh", "test_relay": "proxy/test_relay",
    "test_routing": "routing/test_rank", "test_scoring": "routing/test_scoring",
    "test_security": "e2e/test_security", "test_security_dos": "e2e/test_security_dos",
    "test_security_local": "e2e/test_security_local", "test_security_web": "ui/test_security",
    "test_sessions": "api/test_sessions", "test_shaping": "proxy/test_shaping",
    "test_sharedstate": "store/test_shared", "test_signals": "quota/test_signals",
    "test_soak": "e2e/test_soak", "test_sse": "proxy/test_sse", "test_store": "store/test_accounts",
    "test_transport": "proxy/test_transport", "test_tray": "desktop/test_tray",
    "test_trayicon": "desktop/test_trayicon", "test_ui": "ui/test_ui", "test_ui_usage": "ui/test_usage",
    "test_usage": "quota/test_fetcher", "test_window": "desktop/test_window",
}
SUPPORT = ["attacks", "ciskips", "gui_fixtures", "proxykit", "refreshkit", "soak", "soakchaos",
           "soakload", "soakreport", "tools", "window_probe"]


def git(*args: str) -> None:
    subprocess.run(["git", *args], cwd=ROOT, check=True)


def move() -> None:
    for room in ROOMS:
        (ROOT / "tray" / room).mkdir(exist_ok=True)
        init = ROOT / "tray" / room / "__init__.py"
        if not init.exists():
            init.write_text(f'"""The {room} room."""\n')
            git("add", str(init))
    for old, new in MODULES.items():
        git("mv", f"tray/{old}.py", "tray/" + new.replace(".", "/") + ".py")
    dirs = {t.split("/")[0] for t in TESTS.values()} | {"support"}
    for d in dirs:
        (ROOT / "tests" / d).mkdir(exist_ok=True)
        init = ROOT / "tests" / d / "__init__.py"
        if not init.exists():
            init.write_text("")
            git("add", str(init))
    for old, new in TESTS.items():
        git("mv", f"tests/{old}.py", f"tests/{new}.py")
    for name in SUPPORT:
        git("mv", f"tests/{name}.py", f"tests/support/{name}.py")


DOTTED = {f"tray.{old}": f"tray.{new}" for old, new in MODULES.items()}
DOTTED |= {f"tests.{name}": f"tests.support.{name}" for name in SUPPORT}
DOTTED |= {f"tests.{old}": "tests." + new.replace("/", ".") for old, new in TESTS.items()}
SLASHED = {f"tray/{old}.py": "tray/" + new.replace(".", "/") + ".py" for old, new in MODULES.items()}
SLASHED |= {f"tests/{name}.py": f"tests/support/{name}.py" for name in SUPPORT}
SLASHED |= {f"tests/{old}.py": f"tests/{new}.py" for old, new in TESTS.items()}

DOTTED_RE = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(DOTTED, key=len, reverse=True))
                       + r")(?![\w])")
SLASHED_RE = re.compile(r"(?<![\w/])("
                        + "|".join(re.escape(k) for k in sorted(SLASHED, key=len, reverse=True)) + r")")
FROM_PKG_RE = re.compile(r"^(\s*)from (tray|tests) import ([^(\n]+)$", re.M)


def split_from_package(match: re.Match[str]) -> str:
    indent, pkg, names = match.group(1), match.group(2), match.group(3)
    comment = ""
    if "#" in names:
        names, comment = names.split("#", 1)
        comment = "  #" + comment
    keep: list[str] = []
    lines: list[str] = []
    for part in (p.strip() for p in names.split(",")):
        if not part:
            continue
        name, _, alias = part.partition(" as ")
        name, alias = name.strip(), alias.strip() or name.strip()
        target = DOTTED.get(f"{pkg}.{name}")
        if target is None:
            keep.append(part)
            continue
        parent, _, leaf = target.rpartition(".")
        parent = parent.replace("tray", "TRAY\0", 1).replace("tests", "TESTS\0", 1)
        lines.append(f"{indent}from {parent} import {leaf}" + (f" as {alias}" if alias != leaf else ""))
    if keep:
        lines.insert(0, f"{indent}from {pkg} import {', '.join(keep)}")
    if lines:
        lines[0] += comment
    return "\n".join(lines)


def rewrite(text: str) -> str:
    text = FROM_PKG_RE.sub(split_from_package, text)
    text = DOTTED_RE.sub(lambda m: DOTTED[m.group(1)], text)
    text = SLASHED_RE.sub(lambda m: SLASHED[m.group(1)], text)
    return text.replace("TRAY\0", "tray").replace("TESTS\0", "tests")


def main() -> None:
    move()
    files = [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts
             and ".tools" not in p.parts and p.suffix in {".py", ".md", ".spec", ".toml", ".cfg", ""}
             and p.name != "relayout.py" and "node_modules" not in p.parts]
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError):
            continue
        new = rewrite(text)
        if new != text:
            path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
