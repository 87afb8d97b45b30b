"""Whose encrypted items are whose: known from answers, guessed from a session's last answer,
given up on when the backend refuses them (pure)."""

from __future__ import annotations

from tray.proxy.owners import NOBODY, ReasoningOwners, digest

R0, R1, R9 = digest("r0"), digest("r1"), digest("r9")


def test_an_unknown_item_is_sent_a_known_one_only_to_its_maker() -> None:
    owners = ReasoningOwners()
    owners.learn(1, [R1])
    assert owners.foreign_to(2)(R1) and not owners.foreign_to(1)(R1)
    assert not owners.foreign_to(2)(digest("never seen"))  # sent as it is: the backend decides


def test_new_items_in_a_sessions_context_are_guessed_to_be_its_last_answerers() -> None:
    owners = ReasoningOwners()
    owners.claim("conv", [R1])  # nobody answered this session yet: nothing learned
    assert owners.owner(R1) is None
    owners.answered("conv", 1)
    owners.learn(2, [R0])
    owners.claim("conv", [R0, R1])
    assert (owners.owner(R0), owners.owner(R1)) == (2, 1)  # a known owner stays
    owners.claim(None, [R9])
    assert owners.owner(R9) is None
    assert owners.maker([R0, R1, R1, R9]) == 1 and owners.maker([R9]) is None


def test_a_refusal_gives_up_the_guessed_and_unknown_items_and_keeps_the_sure_ones() -> None:
    owners = ReasoningOwners()
    owners.learn(1, [R0])  # accepted by 1 before: surely 1's
    owners.answered("conv", 1)
    owners.claim("conv", [R1])  # a guess
    owners.refused(1, [R0, R1, R9])
    assert owners.owner(R0) == 1
    assert owners.owner(R1) == NOBODY and owners.owner(R9) == NOBODY
    assert all(owners.foreign_to(i)(R1) for i in (1, 2, 3))
    assert owners.maker([R1, R9]) is None
    owners.learn(2, [R1])  # an account that accepts it after all is sure
    assert owners.owner(R1) == 2


def test_a_guess_never_overrides_what_is_known_for_sure() -> None:
    owners = ReasoningOwners()
    owners.learn(1, [R0])
    owners.learn(2, [R0], sure=False)
    assert owners.owner(R0) == 1


def test_the_digest_reads_the_ends_of_a_long_blob_only() -> None:
    body = "x" * 10_000
    assert digest("a" + body + "z") != digest("b" + body + "z") != digest("a" + body + "y")
    assert digest("a" + body + "z") != digest("a" + body + "xz")  # the length counts too
    assert len(digest("short")) == 16 and digest("short") != digest("shorts")


def test_memory_is_bounded_oldest_first() -> None:
    owners = ReasoningOwners(kept=3, sessions=2)
    a, b, c, d = (digest(x) for x in "abcd")
    owners.learn(1, [a, b, c])
    owners.learn(2, [a, d])  # "a" seen again: kept, "b" the oldest goes
    assert len(owners) == 3 and owners.owner(b) is None and owners.owner(a) == 2
    for n, session in enumerate(("s1", "s2", "s3")):
        owners.answered(session, n + 1)
    owners.claim("s1", [digest("x")])
    owners.claim("s3", [digest("y")])
    assert owners.owner(digest("x")) is None and owners.owner(digest("y")) == 3
