"""The edit of a user's config.toml (pure): only the given keys change, everything else is kept
byte for byte, whatever shape the file has."""

from __future__ import annotations

import tomllib

import pytest

from tray.config import render_config
from tray.config.text import edit
from tray.errors import ConfigError
from tray.models import Config

ODD = """\
# header note

port=4455 # trailing note
\tlog-level = 'debug'

mystery = { a = 1, b = [ 2, 3 ] }

[notifications]   # switches
# above needs-login
needs-login = true

[elsewhere]
x = 1
"""


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    assert len(before.splitlines()) == len(after.splitlines())
    pairs = zip(before.splitlines(), after.splitlines(), strict=True)
    return [(old, new) for old, new in pairs if old != new]


def test_a_value_changes_in_place_with_its_comment_and_spacing() -> None:
    after = edit(ODD, {"port": 5000, "log-level": "warning", "notifications.needs-login": False})
    assert changed_lines(ODD, after) == [
        ("port=4455 # trailing note", "port=5000 # trailing note"),
        ("\tlog-level = 'debug'", "\tlog-level = 'warning'"),
        ("needs-login = true", "needs-login = false"),
    ]


def test_nothing_to_change_gives_the_same_text() -> None:
    assert edit(ODD, {}) == ODD
    crlf = ODD.replace("\n", "\r\n")
    assert edit(crlf, {"port": 1}) == crlf.replace("port=4455", "port=1")


def test_a_missing_key_is_added_among_the_top_level_keys() -> None:
    after = edit(ODD, {"sticky-mode": "disabled", "max-body-mb": 32.0})
    data = tomllib.loads(after)
    assert data["sticky-mode"] == "disabled" and data["max-body-mb"] == 32  # a whole number stays one
    assert "max-body-mb = 32\n" in after
    assert after.index("sticky-mode") < after.index("[notifications]")
    kept = [line for line in after.splitlines() if not line.startswith(("sticky-mode", "max-body-mb"))]
    assert [line for line in kept if line] == [line for line in ODD.splitlines() if line]


@pytest.mark.parametrize("text, expected", [
    ("notifications.quota-low = true\nport = 1\n",
     "notifications.quota-low = true\nnotifications.needs-login = false\nport = 1\n"),
    ("notifications = { quota-low = true }\n", "notifications = { quota-low = true, needs-login = false}\n"),
    ("port = 1\n", "port = 1\n\n[notifications]\nneeds-login = false\n"),
    ('notifications = "off"\nport = 1\n', "port = 1\n\n[notifications]\nneeds-login = false\n"),
])
def test_a_switch_goes_into_whatever_notifications_table_the_file_has(text: str, expected: str) -> None:
    assert edit(text, {"notifications.needs-login": False}) == expected


def test_the_commented_defaults_are_valid_and_edit_cleanly() -> None:
    text = render_config(Config())
    assert tomllib.loads(edit(text, {"port": 0}))["port"] == 0
    assert changed_lines(text, edit(text, {"port": 0})) == [("port = 4455", "port = 0")]


def test_text_only_one_parser_accepts_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        edit("a = = 1\n", {"port": 1})
