"""The pool file's accounts: login/identity rules, priority order, states, selection, threads."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tray.errors import AccountError, AccountNotFoundError
from tray.models import AccountState, Cooldown, Identity, TokenSet
from tray.store.accounts import Store


def tokens(tag: str, expires_at: float = 2_000_000.0, id_token: str | None = "id-tok") -> TokenSet:
    return TokenSet(f"access-{tag}", f"refresh-{tag}", id_token, expires_at)


def ident(account: str, subject: str = "user") -> Identity:
    return Identity(chatgpt_account_id=account, subject=subject)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000_000.0)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    s = Store.open(tmp_path / "data" / "pool.db", clock=clock)
    yield s
    s.close()


def add(store: Store, name: str, **kw: object) -> int:
    account = store.save_login(ident(name), tokens(name), f"{name}@example.com", "plus", **kw)  # type: ignore[arg-type]
    return account.id


def order(store: Store) -> list[str]:
    return [a.identity.chatgpt_account_id for a in store.accounts()]


def test_open_creates_a_private_wal_database(tmp_path: Path) -> None:
    path = tmp_path / "new" / "pool.db"
    with Store.open(path) as s:
        assert s.accounts() == []
        mode = s._read("PRAGMA journal_mode")[0][0]
    assert mode == "wal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_first_login_is_primary_and_later_ones_append(store: Store) -> None:
    a = store.save_login(ident("a"), tokens("a"), "a@example.com", "pro")
    b = store.save_login(ident("b"), tokens("b"), None, None)
    assert (a.primary, a.priority, a.role) == (True, 0, "primary")
    assert (b.primary, b.priority, b.role) == (False, 1, "pool")
    assert a.email == "a@example.com" and a.plan == "pro" and a.state is AccountState.ENABLED
    assert b.name == "b"  # no label, no email: the account id's prefix
    assert store.get(a.id) == a
    assert store.by_identity(ident("b")) == b
    assert store.get(999) is None


def test_make_primary_moves_the_flag_and_the_account_to_the_front(store: Store) -> None:
    add(store, "a")
    add(store, "b")
    c = store.save_login(ident("c"), tokens("c"), None, None, make_primary=True)
    assert order(store) == ["c", "a", "b"]
    assert [a.primary for a in store.accounts()] == [True, False, False]
    assert c.primary and c.priority == 0


def test_relogin_updates_the_known_identity_without_duplicating(store: Store, clock: FakeClock) -> None:
    a = add(store, "a")
    clock.now += 10
    again = store.save_login(ident("a"), tokens("a2", id_token=None), "new@example.com", "pro")
    assert again.id == a and len(store.accounts()) == 1
    assert again.tokens.access_token == "access-a2" and again.tokens.refresh_token == "refresh-a2"
    assert again.tokens.id_token == "id-tok"  # an answer without an id_token keeps the old one
    assert (again.email, again.plan, again.primary) == ("new@example.com", "pro", True)
    assert again.updated_at == clock.now


def test_two_members_of_one_workspace_are_two_accounts(store: Store) -> None:
    one = store.save_login(ident("team", "alice"), tokens("1"), "alice@corp.com", "team")
    two = store.save_login(ident("team", "bob"), tokens("2"), "bob@corp.com", "team")
    assert one.id != two.id
    assert [a.email for a in store.accounts()] == ["alice@corp.com", "bob@corp.com"]


def test_relogin_reenables_needs_login_but_not_a_user_disable(store: Store) -> None:
    a, b = add(store, "a"), add(store, "b")
    store.set_state(a, AccountState.NEEDS_LOGIN, "refresh_token_reused")
    store.set_state(b, AccountState.DISABLED, "switched off")
    assert store.save_login(ident("a"), tokens("a3"), None, None).state is AccountState.ENABLED
    assert store.get(a).state_reason is None  # type: ignore[union-attr]
    assert store.save_login(ident("b"), tokens("b3"), None, None).state is AccountState.DISABLED


def test_adding_the_primary_again_as_pool_keeps_it_primary(store: Store) -> None:
    """Seed gap 3: re-adding the primary as a pool account used to leave no primary at all."""
    a = add(store, "a")
    add(store, "b")
    assert store.save_login(ident("a"), tokens("a4"), None, None, make_primary=False).primary
    assert store.get(a).primary  # type: ignore[union-attr]


def test_existing_pool_account_logged_in_as_primary_does_not_crash(store: Store) -> None:
    """Seed gap 1: moving an existing row to a lower priority hit UNIQUE(priority)."""
    for name in "abcd":
        add(store, name)
    store.save_login(ident("c"), tokens("c2"), None, None, make_primary=True)
    assert order(store) == ["c", "a", "b", "d"]
    assert [a.priority for a in store.accounts()] == [0, 1, 2, 3]
    assert [a.primary for a in store.accounts()] == [True, False, False, False]


def test_move_renumbers_densely(store: Store) -> None:
    ids = {name: add(store, name) for name in "abcd"}
    store.move(ids["d"], 0)
    assert order(store) == ["d", "a", "b", "c"]
    store.move(ids["d"], 2)
    assert order(store) == ["a", "b", "d", "c"]
    store.move(ids["a"], 99)  # clamped to the end
    assert order(store) == ["b", "d", "c", "a"]
    store.move(ids["c"], -5)  # clamped to the front
    assert order(store) == ["c", "b", "d", "a"]
    assert [a.priority for a in store.accounts()] == [0, 1, 2, 3]
    with pytest.raises(AccountNotFoundError):
        store.move(999, 0)


def test_set_primary_moves_flag_and_front(store: Store) -> None:
    ids = {name: add(store, name) for name in "abc"}
    store.set_primary(ids["b"])
    assert order(store) == ["b", "a", "c"]
    assert [a.identity.chatgpt_account_id for a in store.accounts() if a.primary] == ["b"]
    with pytest.raises(AccountNotFoundError):
        store.set_primary(999)


def test_remove_cascades_and_closes_the_gap(store: Store, clock: FakeClock) -> None:
    ids = {name: add(store, name) for name in "abc"}
    b = ids["b"]
    store.set_cooldown(Cooldown(b, clock.now + 60, 429, "rate limited", "default"))
    store.put_usage(b, "{}", clock.now)
    store.touch_dormant(b, "rate.primary", clock.now + 60)
    store.remove(b)
    assert order(store) == ["a", "c"]
    assert [a.priority for a in store.accounts()] == [0, 1]
    assert store.cooldowns() == {} and store.usage(b) is None and store.dormant_touches(clock.now) == {}
    with pytest.raises(AccountNotFoundError):
        store.remove(b)


def test_label_and_meta(store: Store) -> None:
    a = add(store, "a")
    assert store.set_label(a, "  Work  ").label == "Work"
    assert store.get(a).name == "Work"  # type: ignore[union-attr]
    assert store.set_label(a, " ").label is None
    store.update_meta(a, plan="pro")
    store.update_meta(a, email="x@example.com")
    got = store.get(a)
    assert got is not None and (got.plan, got.email) == ("pro", "x@example.com")
    with pytest.raises(AccountNotFoundError):
        store.set_label(999, "x")


def test_states_and_routable(store: Store, clock: FakeClock) -> None:
    a, b, c, d = (add(store, n) for n in "abcd")
    clock.now = 500.0
    disabled = store.set_state(b, AccountState.DISABLED, "switched off")
    assert disabled.state is AccountState.DISABLED
    assert (disabled.state_reason, disabled.state_at) == ("switched off", 500.0)
    store.set_state(c, AccountState.NEEDS_LOGIN, "invalid_grant")
    store.set_cooldown(Cooldown(d, 1000.0, 429, "rate limited", "body"))
    assert [x.id for x in store.routable(900.0)] == [a]
    assert [x.id for x in store.routable(1000.0)] == [a, d]  # the cooldown ends at `until`
    assert [x.id for x in store.accounts(include_inactive=False)] == [a, d]
    enabled = store.set_state(b, AccountState.ENABLED, "ignored")
    assert enabled.state_reason is None
    assert [x.id for x in store.routable(900.0)] == [a, b]


def test_update_tokens_compare_and_set(store: Store) -> None:
    a = add(store, "a")
    assert not store.update_tokens(a, tokens("x"), expected_refresh_token="refresh-stale")
    assert store.get(a).tokens.access_token == "access-a"  # type: ignore[union-attr]
    fresh = tokens("b", expires_at=3e6, id_token=None)
    assert store.update_tokens(a, fresh, expected_refresh_token="refresh-a")
    got = store.get(a)
    assert got is not None
    assert (got.tokens.access_token, got.tokens.refresh_token, got.tokens.expires_at) == (
        "access-b", "refresh-b", 3e6)
    assert got.tokens.id_token == "id-tok"
    assert store.update_tokens(a, tokens("c"))  # unconditional
    assert not store.update_tokens(999, tokens("c"))


def test_select_by_position_id_label_and_email(store: Store) -> None:
    ids = {name: add(store, name) for name in "abc"}
    store.set_label(ids["b"], "Work")
    assert store.select("2").id == ids["b"]  # position and id agree here
    assert store.select("Work").id == ids["b"]
    assert store.select("C@EXAMPLE.COM").id == ids["c"]
    store.move(ids["c"], 0)  # now position 1 is "c" but id 1 is "a"
    with pytest.raises(AccountError, match="matches several accounts"):
        store.select("1")
    assert store.select("#1").id == ids["c"]
    assert store.select("id:1").id == ids["a"]
    with pytest.raises(AccountNotFoundError, match='No account matches "nobody"'):
        store.select("nobody")
    with pytest.raises(AccountNotFoundError):
        store.select("#9")
    store.set_label(ids["a"], "Work")
    with pytest.raises(AccountError, match="several"):
        store.select("Work")


def test_threads_share_one_store(store: Store) -> None:
    ids = [add(store, f"t{i}") for i in range(4)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                account = ids[(n + i) % len(ids)]
                store.put_usage(account, f'{{"n": {i}}}', float(i))
                store.move(account, i % 4)
                store.accounts()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(a.priority for a in store.accounts()) == [0, 1, 2, 3]


def test_atomic_rolls_back_everything_on_error(store: Store) -> None:
    a = add(store, "a")
    with pytest.raises(RuntimeError), store.atomic():
        store.set_label(a, "inside")
        with store.atomic():
            store.put_usage(a, "{}", 1.0)
        raise RuntimeError("boom")
    assert store.get(a).label is None  # type: ignore[union-attr]
    assert store.usage(a) is None


def test_nested_atomic_rolls_back_only_the_inner_part(store: Store) -> None:
    a = add(store, "a")
    with store.atomic():
        store.set_label(a, "kept")
        with pytest.raises(RuntimeError), store.atomic():
            store.put_usage(a, "{}", 1.0)
            raise RuntimeError("inner")
    assert store.get(a).label == "kept"  # type: ignore[union-attr]
    assert store.usage(a) is None


def test_tokens_never_show_in_repr(store: Store) -> None:
    account = store.get(add(store, "a"))
    assert "access-a" not in repr(account) and "refresh-a" not in repr(account)
