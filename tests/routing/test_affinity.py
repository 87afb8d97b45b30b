"""Session affinity keys and the LRU + TTL affinity map (time injected)."""

from __future__ import annotations

import pytest

from tray.routing.affinity import AffinityMap, affinity_key

T0 = 1_800_000_000.0


def test_key_prefers_session_id_header_then_session_id_then_thread_id_then_body() -> None:
    body = {"prompt_cache_key": "pck"}
    assert affinity_key({"Session-Id": "s1", "session_id": "s2", "thread-id": "t"}, body) == "s1"
    assert affinity_key({"session_id": "s2", "thread-id": "t"}, body) == "s2"
    assert affinity_key({"THREAD-ID": "t"}, body) == "t"
    assert affinity_key({}, body) == "pck"


def test_no_key_means_no_affinity() -> None:
    assert affinity_key({}, None) is None
    assert affinity_key({"session-id": "  "}, {"prompt_cache_key": 5}) is None
    assert affinity_key({"content-type": "application/json"}, {"input": []}) is None


def test_codex_cli_sample_headers() -> None:
    headers = {
        "session-id": "01a20af2-f6e6-7350-9ad5-15fdd59c8783",
        "thread-id": "01a20af2-f6e6-7350-9ad5-15fdd59c8783",
    }
    assert affinity_key(headers, {"prompt_cache_key": "other"}) == "01a20af2-f6e6-7350-9ad5-15fdd59c8783"


def test_session_stays_for_the_ttl_after_its_last_success() -> None:
    m = AffinityMap()
    m.set("s", 2, True, now=T0)
    entry = m.get("s", now=T0 + 299.999)
    assert entry is not None and entry.account_id == 2 and entry.fast is True
    assert m.get("s", now=T0 + 300) is None  # the seed's 5-minute window
    assert len(m) == 0


def test_each_success_slides_the_window() -> None:
    m = AffinityMap()
    m.set("s", 1, now=T0)
    m.set("s", 1, now=T0 + 200)
    assert m.sticky_account("s", now=T0 + 450) == 1
    assert m.sticky_account(None, now=T0) is None


def test_different_sessions_are_independent() -> None:
    m = AffinityMap()
    m.set("a", 1, now=T0)
    m.set("b", 2, now=T0)
    assert (m.sticky_account("a", now=T0 + 1), m.sticky_account("b", now=T0 + 1)) == (1, 2)


def test_new_sessions_stay_sticky_beyond_fifty_sessions() -> None:
    # Gap 24: the seed's prune dropped freshly created entries past 50 sessions.
    m = AffinityMap()
    for i in range(200):
        m.set(f"s{i}", i, now=T0 + i)
    assert m.sticky_account("s199", now=T0 + 200) == 199
    assert m.sticky_account("s0", now=T0 + 200) == 0
    assert len(m) == 200


def test_capacity_evicts_the_least_recently_successful() -> None:
    m = AffinityMap(capacity=10_000)
    for i in range(10_001):
        m.set(f"s{i}", 1, now=T0)
    assert len(m) == 10_000
    assert m.get("s0", now=T0) is None and m.get("s1", now=T0) is not None


def test_expired_sessions_are_pruned_as_time_passes() -> None:
    m = AffinityMap()
    for i in range(50):
        m.set(f"s{i}", 1, now=T0)
    m.set("late", 2, now=T0 + 250)
    assert m.get("late", now=T0 + 301) is not None
    assert len(m) == 1


def test_clock_can_be_injected_instead_of_passing_now() -> None:
    now = [T0]
    m = AffinityMap(clock=lambda: now[0])
    m.set("s", 3, False)
    now[0] += 100
    entry = m.get("s")
    assert entry is not None and entry.account_id == 3 and entry.fast is False
    with pytest.raises(TypeError):
        AffinityMap().get("s")


def test_turn_state_goes_only_to_the_account_that_issued_it() -> None:
    m = AffinityMap()
    assert m.forward_turn_state("s", 1, now=T0)  # no owner known
    m.set("s", 1, now=T0, turn_state=True)
    assert m.forward_turn_state("s", 1, now=T0 + 1)
    assert not m.forward_turn_state("s", 2, now=T0 + 1)
    m.set("s", 2, now=T0 + 2)  # served by another account without a new turn state
    assert not m.forward_turn_state("s", 2, now=T0 + 3)
    m.set("s", 2, now=T0 + 4, turn_state=True)
    assert m.forward_turn_state("s", 2, now=T0 + 5) and not m.forward_turn_state("s", 1, now=T0 + 5)


def test_fast_flag_update_does_not_slide_the_window() -> None:
    m = AffinityMap()
    m.set("s", 1, True, now=T0)
    m.set_fast("s", False, now=T0 + 100)
    entry = m.get("s", now=T0 + 200)
    assert entry is not None and entry.fast is False and entry.at == T0


def test_forget_and_bad_settings() -> None:
    m = AffinityMap()
    m.set("s", 1, now=T0)
    m.forget("s")
    m.forget("missing")
    assert m.get("s", now=T0) is None
    with pytest.raises(ValueError):
        AffinityMap(capacity=0)
