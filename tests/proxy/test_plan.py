"""The proxy's adapter over the routing core: plan order, per-attempt bodies, dormant touches, and
planning that never waits on the pool file's write lock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fakes.auth_server import FakeAuth, FakeUser
from tests.support.proxykit import CODEX_HEADERS, codex_body, replies, running_pool, write_lock_held
from tray.models import Account, Config, Identity, QuotaEntry
from tray.proxy.owners import digest
from tray.proxy.plan import Router, attempt_body, blocked_until, record_touches
from tray.proxy.request import Incoming
from tray.quota.usage import usage_view
from tray.routing import RoutingSettings
from tray.store.accounts import Store

DORMANT = {"plan_type": "plus", "rate_limit": {"allowed": True, "limit_reached": False, "primary_window": {
    "used_percent": 0, "limit_window_seconds": 18000, "reset_after_seconds": 18000}}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "pool.db") as opened:
        yield opened


def add(store: Store, fake_id: str) -> Account:
    user = FakeUser(account_id=fake_id, subject=f"u-{fake_id}", email=f"{fake_id}@x.org")
    return store.save_login(Identity(fake_id, user.subject), FakeAuth().token_set(user), user.email, "plus")


def incoming(path: str = "/codex/responses", **obj: object) -> Incoming:
    body = {"model": "m", "input": [], **obj}
    return Incoming(route="responses", method="POST", path=path, query="", headers=(),
                    body=json.dumps(body).encode(), fields=body)


def test_the_turn_state_owner_goes_first_and_affinity_follows_success(store: Store) -> None:
    a, b = add(store, "a"), add(store, "b")
    now = time.time()
    router = Router(store, Config(), lambda: now)
    views = {x.id: usage_view(None, now, account_id=x.id) for x in (a, b)}
    plain = router.plan(incoming(), [a, b], views, now, turn_owner=None)
    assert [x.id for x in plain.order] == [a.id, b.id]
    owned = router.plan(incoming(), [a, b], views, now, turn_owner=b.id)
    assert [x.id for x in owned.order] == [b.id, a.id] and owned.reason == "turn state kept its account"
    session = incoming(prompt_cache_key="conv")
    first = router.plan(session, [a, b], views, now, turn_owner=None)
    router.succeeded(session, first, b, fast_on=True)
    again = router.plan(session, [a, b], views, now, turn_owner=None)
    assert again.sticky_account == b.id and again.sticky_fast is True


def blocked(reset_after: int | None, allowed: bool = False) -> dict[str, object]:
    window = {"used_percent": 100, "limit_window_seconds": 18000}
    if reset_after is not None:
        window["reset_after_seconds"] = reset_after
    return {"plan_type": "plus", "rate_limit": {"allowed": allowed, "limit_reached": not allowed,
                                               "primary_window": window}}


def test_a_blocked_account_is_held_back_until_its_reset(store: Store) -> None:
    a, b = add(store, "a"), add(store, "b")
    now = time.time()
    router = Router(store, Config(), lambda: now)
    views = {a.id: usage_view(QuotaEntry(a.id, json.dumps(blocked(900)), now), now),
             b.id: usage_view(None, now, account_id=b.id)}
    plan = router.plan(incoming(), [a, b], views, now, turn_owner=a.id)  # even as the turn-state owner
    assert [x.id for x in plan.order] == [b.id]
    assert [(x.id, round(until)) for x, until in plan.held] == [(a.id, round(now + 900))]
    # No reset known: a last-resort candidate. Not blocked: an ordinary one.
    assert blocked_until(usage_view(QuotaEntry(a.id, json.dumps(blocked(None)), now), now), now) is None
    assert blocked_until(usage_view(QuotaEntry(a.id, json.dumps(blocked(900, True)), now), now), now) is None
    assert blocked_until(None, now) is None


def test_attempt_body_is_rebuilt_per_account_and_compact_is_left_alone(store: Store) -> None:
    a = add(store, "a")
    now = time.time()
    router = Router(store, Config(fast_mode="always"), lambda: now)
    inc = incoming()
    plan = router.plan(inc, [a], {}, now, None)
    body, on, note, _ = attempt_body(inc, a, None, plan, now)
    assert on and json.loads(body)["service_tier"] == "priority" and note == "Fast: enabled (config)"
    assert json.loads(inc.body).get("service_tier") is None  # the snapshot is untouched
    compact = incoming("/codex/responses/compact")
    body, on, _, _ = attempt_body(compact, a, None, plan, now)
    assert not on and body == compact.body


def test_another_accounts_encrypted_items_are_left_out_and_fast_mode_still_applies(store: Store) -> None:
    a = add(store, "a")
    now = time.time()
    items = [{"type": "message"}, {"type": "reasoning", "encrypted_content": "mine"},
             {"type": "compaction", "encrypted_content": "theirs"}]
    inc = replace(incoming(input=items), sealed=(digest("mine"), digest("theirs")))
    theirs = {digest("theirs")}.__contains__
    for config, tier in ((Config(fast_mode="always"), "priority"), (Config(fast_mode="disabled"), None)):
        plan = Router(store, config, lambda: now).plan(inc, [a], {}, now, None)
        sent = attempt_body(inc, a, None, plan, now, theirs)
        assert sent.left_out == ("compaction",) and sent.fast_on == (tier is not None)
        assert json.loads(sent.body) == {"model": "m", "input": items[:2],
                                         **({"service_tier": tier} if tier else {})}
        assert attempt_body(inc, a, None, plan, now, lambda key: False).left_out == ()
    same = attempt_body(inc, a, None, plan, now, lambda key: False)
    assert same.body is inc.body  # nothing to leave out, fast mode off: the client's own bytes


def test_dormant_touches_are_recorded_unless_disabled(store: Store) -> None:
    a = add(store, "a")
    now = time.time()
    store.put_usage(a.id, json.dumps(DORMANT), now)
    view = usage_view(store.usage(a.id), now)
    record_touches(store, RoutingSettings(dormant_touch="disabled"), a, view, now)
    assert store.dormant_touches(now) == {}
    record_touches(store, RoutingSettings(dormant_touch="always"), a, view, now)
    assert store.dormant_touches(now) == {a.id: {"rate.primary"}}
    assert store.dormant_touches(now + 1801) == {}


def test_a_write_lock_held_elsewhere_stalls_no_stream_and_fails_no_request() -> None:
    with running_pool(["a", "b"]) as pool:
        pool.upstream.script("a", replies.ok(deltas=40, event_delay=0.05))  # a long answer
        events: list[str] = []
        first_event = threading.Event()

        def stream() -> None:
            with pool.client() as client, client.stream(
                "POST", "/backend-api/codex/responses", json=codex_body(), headers=CODEX_HEADERS
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        events.append(json.loads(line[5:])["type"])
                        first_event.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert first_event.wait(20)
        # A dormant-window suppression that ran out: a read must not clean it up in passing.
        pool.engine.store.touch_dormant(pool.accounts["b"].id, "rate.primary", time.time() - 1)
        with write_lock_held(pool.engine.paths.db_file) as holder:
            response = pool.post()
            assert response.status_code == 200, response.text
            reader.join(30)
            assert not reader.is_alive() and events[-1] == "response.completed"
            assert holder.poll() is None  # all of it while the other process held the lock
        pool.wait_bookkeeping()
