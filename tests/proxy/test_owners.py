"""Whose encrypted items are whose: learned from answers, from a session's last answer, and from
refusals (pure)."""

from __future__ import annotations

from tray.proxy.owners import NOBODY, ReasoningOwners


def test_an_unknown_blob_is_nobodys_business_a_known_one_is_its_makers() -> None:
    owners = ReasoningOwners()
    owners.learn(1, ["r1"])
    assert owners.foreign_to(2)("r1") and not owners.foreign_to(1)("r1")
    assert not owners.foreign_to(2)("never seen")  # sent as it is: the backend decides


def test_new_blobs_in_a_sessions_context_belong_to_whoever_answered_it_last() -> None:
    owners = ReasoningOwners()
    owners.claim("conv", ["r1"])  # nobody answered this session yet: nothing learned
    assert owners.owner("r1") is None
    owners.answered("conv", 1)
    owners.learn(2, ["r0"])
    owners.claim("conv", ["r0", "r1"])
    assert (owners.owner("r0"), owners.owner("r1")) == (2, 1)  # a known owner stays
    owners.claim(None, ["r9"])
    assert owners.owner("r9") is None


def test_a_blob_no_account_could_read_is_foreign_to_every_account() -> None:
    owners = ReasoningOwners()
    owners.learn(NOBODY, ["stale"])
    assert all(owners.foreign_to(i)("stale") for i in (1, 2, 3))


def test_memory_is_bounded_oldest_first() -> None:
    owners = ReasoningOwners(kept=3, sessions=2)
    owners.learn(1, ["a", "b", "c"])
    owners.learn(2, ["a", "d"])  # "a" seen again: kept, "b" the oldest goes
    assert len(owners) == 3 and owners.owner("b") is None and owners.owner("a") == 2
    for n, session in enumerate(("s1", "s2", "s3")):
        owners.answered(session, n + 1)
    owners.claim("s1", ["x"])
    owners.claim("s3", ["y"])
    assert owners.owner("x") is None and owners.owner("y") == 3
