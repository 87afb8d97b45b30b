from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.jwt import account_claims, make_jwt
from tray.auth.claims import decode_payload, expiry, identity_and_meta
from tray.models import Identity


@pytest.mark.parametrize(
    "junk", [None, "", "abc", "a.b", "a.b.c.d", "x.!!!.y", "x.bm90IGpzb24.y", "x.WzEsMl0.y", "é.é.é"]
)
def test_junk_tokens_decode_to_nothing(junk: str | None) -> None:
    assert decode_payload(junk) == {}
    assert identity_and_meta(junk, junk) == (None, None, None)
    assert expiry(junk) is None


def test_identity_email_and_plan_from_the_id_token() -> None:
    token = make_jwt(account_claims("acc-9", "user-9", "nine@example.com", "team"))
    assert identity_and_meta(token, None) == (Identity("acc-9", "user-9"), "nine@example.com", "team")


def test_team_members_are_different_identities() -> None:
    one, _, _ = identity_and_meta(make_jwt(account_claims("ws-1", "alice")), None)
    two, _, _ = identity_and_meta(make_jwt(account_claims("ws-1", "bob")), None)
    assert one != two
    assert one is not None and two is not None
    assert one.chatgpt_account_id == two.chatgpt_account_id


def test_access_token_alone_gives_email_from_the_profile_claim() -> None:
    claims = {
        "sub": "user-2",
        "https://api.openai.com/auth": {"chatgpt_account_id": "acc-2", "chatgpt_plan_type": "pro"},
        "https://api.openai.com/profile": {"email": "two@example.com"},
    }
    expected = (Identity("acc-2", "user-2"), "two@example.com", "pro")
    assert identity_and_meta(None, make_jwt(claims)) == expected


def test_fallbacks_top_level_account_id_organizations_and_user_id() -> None:
    top = make_jwt({"chatgpt_account_id": "acc-top", "sub": "s"})
    assert identity_and_meta(top, None)[0] == Identity("acc-top", "s")
    orgs = make_jwt({"organizations": [{"id": "org-1"}], "sub": "s"})
    assert identity_and_meta(orgs, None)[0] == Identity("org-1", "s")
    no_sub = make_jwt({"https://api.openai.com/auth": {"chatgpt_account_id": "a", "chatgpt_user_id": "u"}})
    assert identity_and_meta(no_sub, None)[0] == Identity("a", "u")


def test_id_token_wins_and_access_token_fills_gaps() -> None:
    id_token = make_jwt({"sub": "from-id", "https://api.openai.com/auth": {"chatgpt_account_id": "acc"}})
    access = make_jwt(account_claims("other", "from-access", "a@example.com", "plus"))
    identity, email, plan = identity_and_meta(id_token, access)
    assert identity == Identity("acc", "from-id")
    assert (email, plan) == ("a@example.com", "plus")


def test_no_identity_without_both_parts() -> None:
    assert identity_and_meta(make_jwt({"sub": "only-sub"}), None)[0] is None
    assert identity_and_meta(make_jwt({"chatgpt_account_id": "only-acc"}), None)[0] is None


def test_expiry_reads_exp_seconds() -> None:
    assert expiry(make_jwt({"exp": 1_700_000_000})) == 1_700_000_000.0
    assert expiry(make_jwt({"exp": "soon"})) is None
    assert expiry(make_jwt({"exp": True})) is None


@given(st.text() | st.binary().map(lambda b: "x." + base64.urlsafe_b64encode(b).decode().rstrip("=") + ".y"))
def test_decoding_never_raises(token: str) -> None:
    decode_payload(token)
    identity_and_meta(token, token)
    expiry(token)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_odd_claim_shapes_never_raise(value: object) -> None:
    for claims in (
        {"sub": value},
        {"https://api.openai.com/auth": value},
        {"organizations": value},
        {"exp": value},
    ):
        token = make_jwt(claims)
        identity_and_meta(token, token)
        expiry(token)
