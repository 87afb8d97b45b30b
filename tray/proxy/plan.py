"""The proxy's use of the pure routing core: which accounts to try in which order (affinity, the
ranking, turn-state ownership), each attempt's body (fast mode), cooldowns and dormant touches.

Everything here is a thin adapter over :mod:`tray.routing.ranking`, :mod:`tray.routing.affinity`,
:mod:`tray.routing.fastmode` and :mod:`tray.routing.cooldown`; the decisions themselves live there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from tray.models import Account, CandidateScore, Clock, Config
from tray.proxy.body import parse_object, without_sealed
from tray.proxy.owners import digest
from tray.proxy.request import Incoming
from tray.quota import UsageView
from tray.routing import (
    AffinityMap,
    RoutingSettings,
    affinity_key,
    available_at,
    decide_fast,
    dormant_labels,
    fast_body,
    rank,
)

if TYPE_CHECKING:
    from tray.store import Store

DORMANT_SUPPRESSION = 1800.0  # seconds a touched dormant window is ignored by every process
CODEX_RESPONSES = ("/codex/responses",)


@dataclass(frozen=True)
class Plan:
    order: list[Account]
    reason: str
    scores: tuple[CandidateScore, ...]
    key: str | None  # the affinity key, if the request has one
    sticky_account: int | None  # the session's account while its affinity is active
    sticky_fast: bool | None  # whether that account's last attempt ran in fast mode
    # Accounts left out because their cached usage is blocked until a future reset: (account, reset).
    held: tuple[tuple[Account, float], ...] = ()
    # The routing settings this request was planned with; every attempt of it uses the same.
    settings: RoutingSettings = field(default_factory=RoutingSettings)
    session: str | None = None  # the session key, whatever sticky-mode says (whose reasoning is whose)


class Router:
    """Per-process routing state (affinity map) around the pure ranking."""

    def __init__(self, store: Store, config: Config, clock: Clock) -> None:
        self.store = store
        self.settings = RoutingSettings.from_config(config)
        self.clock = clock
        self.affinity = AffinityMap(clock=clock)

    def configure(self, config: Config) -> None:
        """Take the routing keys of a (re)loaded config, for the requests planned from now on (one
        reference swapped: safe from any thread)."""
        self.settings = RoutingSettings.from_config(config)

    @staticmethod
    def session_of(inc: Incoming) -> str | None:
        """The request's session key (its ``prompt_cache_key`` or session header), if it has one."""
        return affinity_key(dict(inc.headers), inc.fields)

    def plan(
        self,
        inc: Incoming,
        accounts: Sequence[Account],
        views: Mapping[int, UsageView],
        now: float,
        turn_owner: int | None,
        maker: int | None = None,
    ) -> Plan:
        """``maker``: the account whose encrypted items the request's context holds; with no active
        affinity it is the session's account for the ranking (elsewhere they would be left out)."""
        rsettings = self.settings
        session = self.session_of(inc)
        key = session if rsettings.sticky_mode != "disabled" else None
        entry = self.affinity.get(key) if key is not None else None
        sticky = entry.account_id if entry is not None else (maker if key is not None else None)
        touched = {i: frozenset(labels) for i, labels in self.store.dormant_touches(now).items()}
        ranking = rank(accounts, views, sticky_account=sticky, settings=rsettings,
                               touched=touched, now=now)
        by_id = {a.id: a for a in accounts}
        order = [by_id[i] for i in ranking.order if i in by_id]
        reason = ranking.reason
        if turn_owner is not None and turn_owner in by_id and order and order[0].id != turn_owner:
            # The turn state pins this turn to the account that issued it while it can serve.
            order = [by_id[turn_owner], *[a for a in order if a.id != turn_owner]]
            reason = "turn state kept its account"
        # A blocked account is not tried again before its reset: upstream would refuse it. Once the
        # reset passed, its cache entry expired and was refetched, so it is a candidate again.
        held = tuple((a, until) for a in order if (until := blocked_until(views.get(a.id), now)) is not None)
        if held:
            order = [a for a in order if all(a.id != h.id for h, _ in held)]
        fast = entry.fast if entry is not None else None
        return Plan(order, reason, ranking.scores, key, sticky, fast, held, rsettings, session)

    def succeeded(self, inc: Incoming, plan: Plan, account: Account, fast_on: bool) -> None:
        if plan.key is not None:
            self.affinity.set(plan.key, account.id, fast_on)


def blocked_until(view: UsageView | None, now: float) -> float | None:
    """When a blocked account's limit lifts, if its cached usage says blocked and names a reset
    still ahead; ``None`` otherwise (not blocked, reset passed, or no reset known: such an account
    stays a last-resort candidate)."""
    if view is None or view.usage is None or not view.usage.blocked:
        return None
    until = available_at(view, None, now)
    return until if until is not None and until > now else None


class AttemptBody(NamedTuple):
    """What one attempt sends: the body, whether fast mode is on (and why), and the types of the
    encrypted input items another account made that were left out of it."""

    body: bytes
    fast_on: bool
    fast_note: str | None
    left_out: tuple[str, ...] = ()


def attempt_body(
    inc: Incoming, account: Account, view: UsageView | None, plan: Plan, now: float,
    foreign: Callable[[bytes], bool] | None = None,
) -> AttemptBody:
    """This attempt's body: the request's own bytes, or (when fast mode says so) a copy of its JSON
    text with ``service_tier: "priority"`` appended, sent plain. ``foreign(digest)`` says which of
    the request's encrypted items another account made: those are left out (the body parsed and
    rebuilt, for this attempt only). Decided for every attempt, so no account's decision leaks
    into another's."""
    drop = {d for d in inc.sealed if foreign(d)} if foreign is not None else set()
    if inc.fields is None or not inc.path.startswith(CODEX_RESPONSES):
        return AttemptBody(inc.body, False, None)
    decision = None
    if not inc.path.endswith("/compact"):
        previous = plan.sticky_fast if plan.sticky_account == account.id else None
        decision = decide_fast(inc.fields, view, plan.settings, previous, now)
    note = decision.note if decision is not None else None
    text: bytes = inc.json_text
    left_out: tuple[str, ...] = ()
    if drop:
        obj, encode = parse_object(text)
        kept, gone = without_sealed(obj, lambda blob: digest(blob) in drop)
        text, left_out = encode(kept), tuple(str(item.get("type")) for item in gone)
    if decision is None or not decision.on:
        return AttemptBody(text if left_out else inc.body, False, note, left_out)
    body = fast_body(text, inc.fields, decision)
    return AttemptBody(inc.body if body is inc.json_text else body, True, note, left_out)


def record_touches(
    store: Store, settings: RoutingSettings, account: Account, view: UsageView | None, now: float
) -> None:
    """After a 2xx: every dormant window in the usage this attempt used counts as touched."""
    if view is None or view.usage is None:
        return
    if settings.dormant_touch == "disabled":
        return
    for label in dormant_labels(view.usage):
        store.touch_dormant(account.id, label, now + DORMANT_SUPPRESSION)
