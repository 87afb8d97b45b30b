"""Window codes, sessions and the owner's challenge as pure state (tray/api/sessions.py), on a fake clock."""

from __future__ import annotations

from tests.support.clock import FakeClock
from tray.api.sessions import (
    CHALLENGE_TTL,
    CODE_TTL,
    MAX_CODES,
    MAX_SESSIONS,
    SESSION_IDLE,
    Sessions,
    client_proof,
    server_proof,
)


def test_a_code_works_once_and_only_within_its_minute() -> None:
    clock = FakeClock(1000.0)
    sessions = Sessions(clock)
    code = sessions.mint()
    assert sessions.unspent(code) and sessions.unspent(code)
    assert sessions.redeem(code) is not None
    assert not sessions.unspent(code) and sessions.redeem(code) is None
    late = sessions.mint()
    clock.now += CODE_TTL
    assert CODE_TTL <= 60 and sessions.redeem(late) is None
    assert sessions.redeem("cpc-made-up") is None


def test_a_session_lives_while_used_and_ends_when_idle() -> None:
    clock = FakeClock(1000.0)
    sessions = Sessions(clock)
    session = sessions.redeem(sessions.mint())
    assert session is not None
    for _ in range(3):
        clock.now += SESSION_IDLE - 1
        assert sessions.valid(session)
    clock.now += SESSION_IDLE
    assert not sessions.valid(session)
    assert not sessions.valid("cps-made-up")


def test_codes_and_sessions_are_bounded_oldest_first() -> None:
    sessions = Sessions(FakeClock(1000.0))
    codes = [sessions.mint() for _ in range(MAX_CODES + 5)]
    assert sessions.redeem(codes[0]) is None and sessions.redeem(codes[-1]) is not None
    live = [sessions.redeem(sessions.mint()) for _ in range(MAX_SESSIONS + 1)]
    assert not sessions.valid(str(live[0])) and sessions.valid(str(live[-1]))


def test_a_challenge_is_answered_once_within_its_time() -> None:
    clock = FakeClock(1000.0)
    sessions = Sessions(clock)
    mine = sessions.challenge("client-nonce")
    assert sessions.answer(mine) == "client-nonce"
    assert sessions.answer(mine) is None
    late = sessions.challenge("client-nonce")
    clock.now += CHALLENGE_TTL
    assert sessions.answer(late) is None


def test_proofs_depend_on_the_token_the_port_both_nonces_and_the_side() -> None:
    base = server_proof("cpmt-key", 4455, "c", "s")
    assert base == server_proof("cpmt-key", 4455, "c", "s")
    others = {server_proof("cpmt-other", 4455, "c", "s"), server_proof("cpmt-key", 4456, "c", "s"),
              server_proof("cpmt-key", 4455, "x", "s"), server_proof("cpmt-key", 4455, "c", "x"),
              client_proof("cpmt-key", 4455, "c", "s")}
    assert base not in others and len(others) == 5
