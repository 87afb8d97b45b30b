"""The key table's checks give structured problems: which key, what is wrong, what is used
instead; the sentence a user reads is built from them."""

from __future__ import annotations

from tray.config import Problem, validate
from tray.models import Config, Notifications


def test_a_bad_value_names_its_key_its_message_and_its_fallback() -> None:
    config, problems = validate({"port": "abc", "sticky-strength": -1, "notifications": {"quota-low": "yes"}})
    assert config == Config()
    assert problems == [
        Problem("port", '"port" must be an integer from 0 to 65535 (got "abc")', 4455),
        Problem("sticky-strength", '"sticky-strength" must be a number >= 0 (got -1)', 1.0),
        Problem("notifications.quota-low", '"notifications.quota-low" must be true or false (got "yes")',
                False),
    ]
    assert [str(p) for p in problems] == [
        '"port" must be an integer from 0 to 65535 (got "abc"); using 4455',
        '"sticky-strength" must be a number >= 0 (got -1); using 1',
        '"notifications.quota-low" must be true or false (got "yes"); using false',
    ]


def test_an_unknown_key_has_no_fallback_and_is_ignored() -> None:
    _, problems = validate({"fast_mode": "always", "notifications": {"loud": True}})
    assert problems == [Problem("fast_mode", 'unknown key "fast_mode"'),
                        Problem("notifications.loud", 'unknown key "notifications.loud"')]
    assert all(p.fallback is None and str(p).endswith(" (ignored)") for p in problems)


def test_a_notifications_value_that_is_no_table_falls_back_to_every_default_switch() -> None:
    _, problems = validate({"notifications": "off"})
    assert problems == [Problem("notifications", '"notifications" must be a table of true/false switches '
                                                 '(got "off")', Notifications())]
    assert str(problems[0]).endswith("; using the defaults")


def test_a_remote_host_without_allow_remote_is_a_problem_of_host() -> None:
    config, problems = validate({"host": "0.0.0.0"})
    assert config.host == "127.0.0.1"
    assert [(p.key, p.fallback) for p in problems] == [("host", "127.0.0.1")]
    assert "allow-remote" in problems[0].message and "loopback" in problems[0].message
