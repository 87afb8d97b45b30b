"""Pool editing from the command line: ``accounts``, ``remove``, ``enable``, ``disable``, ``label``,
``priority`` and ``primary``.

An account is named the way ``codex-pool accounts`` shows it: its position (``2`` or ``#2``), its
id (``id:7``), its label or its email (see :meth:`tray.store.accounts.Store.select`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from tray.errors import AccountError
from tray.models import Account, AccountState, Cooldown, QuotaEntry
from tray.paths import resolve_paths
from tray.quota import anchor, by_length, parse_usage
from tray.store import Store

SHORT_WINDOW_MAX = 24 * 3600.0  # windows up to a day are the "5h" kind; longer ones the weekly kind
LABEL_MAX = 100
SELECTOR_HELP = "the account: its # or id:<id> from 'codex-pool accounts', its label or its email"


def register(sub: Any) -> None:
    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text + ".")
        parser.set_defaults(func=func)
        return parser

    listing = add("accounts", run_list, "list the pool's accounts with their state and quota")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    remove = add("remove", run_remove, "remove an account from the pool")
    remove.add_argument("account", help=SELECTOR_HELP)
    remove.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for name, func, text in (
        ("enable", run_enable, "let an account take requests again"),
        ("disable", run_disable, "stop routing requests to an account (it stays in the pool)"),
        ("primary", run_primary, "make an account the primary and put it first"),
    ):
        add(name, func, text).add_argument("account", help=SELECTOR_HELP)
    label = add("label", run_label, "set an account's label (an empty text clears it)")
    label.add_argument("account", help=SELECTOR_HELP)
    label.add_argument("text", help="the new label")
    priority = add("priority", run_priority, "move an account to a position in the priority order")
    priority.add_argument("account", help=SELECTOR_HELP)
    priority.add_argument("position", type=int, help="1 is tried first")


def open_store() -> Store:
    return Store.open(resolve_paths().ensure().db_file)


def describe(account: Account) -> str:
    """``Work (a@example.com)``: the label, with the email when both exist."""
    if account.label and account.email:
        return f"{account.label} ({account.email})"
    return account.name


# ---- listing -------------------------------------------------------------------------------------


def window_views(entry: QuotaEntry | None, now: float) -> dict[str, dict[str, Any]]:
    """The cached quota as ``{"5h": {...}, "weekly": {...}}``, windows classified by their length."""
    usage = parse_usage(entry.raw) if entry is not None else None
    if entry is None or usage is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for _, window in by_length(anchor(usage, entry.updated_at)):
        if window.window_seconds is None:
            continue
        kind = "5h" if window.window_seconds <= SHORT_WINDOW_MAX else "weekly"
        passed = window.reset_at is not None and window.reset_at <= now
        out.setdefault(kind, {
            "window_seconds": window.window_seconds,
            # A window whose reset has passed starts over; the next usage fetch will confirm it.
            "used_percent": 0.0 if passed else window.used_percent,
            "reset_at": None if passed else window.reset_at,
        })
    return out


def exhausted(entry: QuotaEntry | None, now: float) -> bool:
    """Whether the cached usage says the account hit its limit (and that limit has not reset yet)."""
    usage = parse_usage(entry.raw) if entry is not None else None
    if entry is None or usage is None or not usage.blocked:
        return False
    resets = [w.reset_at for _, w in by_length(anchor(usage, entry.updated_at)) if w.reset_at is not None]
    until = usage.blocked_until or (max(resets) if resets else None)
    return until is None or until > now


def account_row(
    position: int, account: Account, cooldown: Cooldown | None, entry: QuotaEntry | None, now: float
) -> dict[str, Any]:
    """Everything ``accounts --json`` says about one account (never a token)."""
    return {
        "position": position,
        "id": account.id,
        "name": account.name,
        "label": account.label,
        "email": account.email,
        "plan": account.plan,
        "role": account.role,
        "primary": account.primary,
        "state": account.state.value,
        "state_reason": account.state_reason,
        "cooldown": None if cooldown is None else {
            "until": cooldown.until, "status": cooldown.status, "reason": cooldown.reason},
        "quota": window_views(entry, now),
        "exhausted": exhausted(entry, now),
        "quota_updated_at": None if entry is None else entry.updated_at,
    }


def _when(epoch: float, now: float) -> str:
    fmt = "%H:%M" if epoch - now < 20 * 3600 else "%a %H:%M"
    return time.strftime(fmt, time.localtime(epoch))


def _state_text(row: dict[str, Any], now: float) -> str:
    state = str(row["state"]).replace("_", " ")
    if row["state_reason"]:
        return f"{state}: {row['state_reason']}"
    if row["cooldown"] is not None:
        return f"cooling until {_when(row['cooldown']['until'], now)} ({row['cooldown']['reason']})"
    if row["exhausted"]:
        return "enabled, usage limit reached"
    return state


def _quota_text(window: dict[str, Any] | None, now: float) -> str:
    if not window or window["used_percent"] is None:
        return "-"
    text = f"{window['used_percent']:.0f}%"
    return text + (f" (resets {_when(window['reset_at'], now)})" if window["reset_at"] else "")


def render_table(rows: list[dict[str, Any]], now: float) -> str:
    if not rows:
        return "No accounts yet. Add one with 'codex-pool login'."
    header = ("#", "id", "account", "plan", "role", "state", "5h used", "weekly used")
    lines = [
        (
            str(r["position"]), str(r["id"]),
            f"{r['label']} ({r['email']})" if r["label"] and r["email"] else str(r["name"]),
            r["plan"] or "?", r["role"], _state_text(r, now),
            _quota_text(r["quota"].get("5h"), now), _quota_text(r["quota"].get("weekly"), now),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in [header, *lines])


def run_list(args: argparse.Namespace) -> int:
    now = time.time()
    with open_store() as store:
        cooldowns, usages = store.cooldowns(now), store.usages()
        rows = [account_row(i, a, cooldowns.get(a.id), usages.get(a.id), now)
                for i, a in enumerate(store.accounts(), start=1)]
    if args.json:
        print(json.dumps({"accounts": rows}, indent=2))
    else:
        print(render_table(rows, now))
    return 0


# ---- edits ---------------------------------------------------------------------------------------


def run_remove(args: argparse.Namespace) -> int:
    with open_store() as store:
        account = store.select(args.account)
        what = f"{describe(account)}{' (the primary)' if account.primary else ''}"
        if not args.yes:
            if not sys.stdin.isatty():
                raise AccountError(f"Not removing {what}: add --yes to confirm without a terminal")
            try:
                answer = input(f"Remove {what} from the pool? Its tokens are deleted. [y/N] ")
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing removed.")
                return 1
        store.remove(account.id)
    print(f"Removed {what}.")
    return 0


def run_enable(args: argparse.Namespace) -> int:
    with open_store() as store:
        account = store.select(args.account)
        if account.state is AccountState.NEEDS_LOGIN:
            raise AccountError(
                f"{describe(account)} needs a new sign-in ({account.state_reason or 'login expired'}):"
                " run 'codex-pool login' with that account"
            )
        store.set_state(account.id, AccountState.ENABLED)
    print(f"Enabled {describe(account)}.")
    return 0


def run_disable(args: argparse.Namespace) -> int:
    with open_store() as store:
        account = store.select(args.account)
        if account.state is not AccountState.DISABLED:
            store.set_state(account.id, AccountState.DISABLED, "Turned off by you")
    print(f"Disabled {describe(account)}; it gets no requests until you enable it.")
    return 0


def run_label(args: argparse.Namespace) -> int:
    text = args.text.strip()
    if len(text) > LABEL_MAX:
        raise AccountError(f"A label is at most {LABEL_MAX} characters (got {len(text)})")
    with open_store() as store:
        account = store.set_label(store.select(args.account).id, text or None)
    print(f"Label set: {describe(account)}." if text else f"Label cleared: {describe(account)}.")
    return 0


def run_priority(args: argparse.Namespace) -> int:
    with open_store() as store:
        count = len(store.accounts())
        if not 1 <= args.position <= max(count, 1):
            raise AccountError(f"Position must be from 1 to {count} (got {args.position})")
        account = store.move(store.select(args.account).id, args.position - 1)
    print(f"{describe(account)} is now #{account.priority + 1}.")
    return 0


def run_primary(args: argparse.Namespace) -> int:
    with open_store() as store:
        account = store.set_primary(store.select(args.account).id)
    print(f"{describe(account)} is now the primary and is tried first.")
    return 0
