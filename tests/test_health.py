"""tray.health: when an account that cannot serve serves again (pure, fixed times)."""

from __future__ import annotations

from tray.health import AccountView, unusable_until
from tray.models import Account, AccountState, Cooldown, Identity, TokenSet, Usage, Window

NOW = 1_800_000_000.0


def account() -> Account:
    tokens = TokenSet("at", "rt", "it", NOW + 3600)
    return Account(1, Identity("acc-1", "user-1"), "a@example.com", None, "plus", 0, False,
                   AccountState.ENABLED, None, NOW, tokens, NOW, NOW)


def usage(used: float, reset_in: float, *, blocked: bool = False) -> Usage:
    return Usage("plus", not blocked, blocked, Window(used, 18000.0, reset_in, NOW + reset_in),
                 Window(40.0, 604800.0, 86400.0, NOW + 86400.0))


def test_a_window_at_its_limit_holds_the_account_until_it_resets() -> None:
    # At 100 % the account cannot serve, whether or not the payload also says "limit reached":
    # the window and the menu then say "usage limit reached, resets <that time>".
    assert unusable_until(AccountView(account(), usage(100.0, 2400.0)), NOW) == NOW + 2400.0
    assert unusable_until(AccountView(account(), usage(100.0, 2400.0, blocked=True)), NOW) == NOW + 2400.0
    # a cooldown shorter than the window does not make it come back sooner
    cooling = Cooldown(1, NOW + 600.0, 429, "rate limited", "body")
    assert unusable_until(AccountView(account(), usage(100.0, 2400.0), cooling), NOW) == NOW + 2400.0


def test_an_account_below_its_limit_or_past_its_reset_is_usable() -> None:
    assert unusable_until(AccountView(account(), usage(99.0, 2400.0)), NOW) is None
    assert unusable_until(AccountView(account(), usage(100.0, 2400.0)), NOW + 2401.0) is None
