"""config.toml on disk: defaults, per-key fallback, unknown keys, invalid TOML, saving."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from tray.config import KEYS, load_config, render_config, save_config
from tray.config import validate as validate_keys
from tray.errors import ConfigError, SettingsRejected
from tray.models import Config, Notifications


def validate(mapping: dict[str, object]) -> tuple[Config, list[str]]:
    """The config and each problem as the user reads it."""
    config, problems = validate_keys(mapping)
    return config, [str(p) for p in problems]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_file_is_written_with_commented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.toml"
    loaded = load_config(path)
    assert loaded.config == Config() and loaded.problems == () and loaded.path == path
    text = path.read_text()
    assert text == render_config(Config())
    assert tomllib.loads(text)["sticky-mode"] == "auto"
    for key in KEYS:  # every key appears, each with a comment above it
        short = key.split(".", 1)[-1]
        lines = text.splitlines()
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{short} = "))
        assert lines[index - 1].startswith("#"), key
    assert load_config(path).problems == ()


def test_defaults() -> None:
    c = Config()
    assert (c.fast_mode, c.fast_mode_bias, c.sticky_mode, c.sticky_strength, c.dormant_touch) == (
        "auto", 0.0, "auto", 1.0, "always")
    assert (c.host, c.port, c.allow_remote, c.max_body_mb, c.log_level, c.quota_low_percent) == (
        "127.0.0.1", 4455, False, 64.0, "info", 10.0)
    assert c.upstream_url == "https://chatgpt.com/backend-api" and c.auth_url == "https://auth.openai.com"
    assert c.notifications == Notifications(True, True, True, True, False)
    assert c.max_body_bytes == 64 * 1024 * 1024


def test_values_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", """
fast-mode = "always"
fast-mode-bias = 0.03
sticky-mode = "disabled"
sticky-strength = 2.5
dormant-touch = "new-session-only"
port = 0
upstream-url = "http://127.0.0.1:9999/backend-api/"
max-body-mb = 0.5
log-level = "DEBUG"
quota-low-percent = 25
[notifications]
quota-low = true
needs-login = false
""")
    loaded = load_config(path)
    c = loaded.config
    assert loaded.problems == ()
    assert (c.fast_mode, c.fast_mode_bias) == ("always", 0.03)
    assert (c.sticky_mode, c.sticky_strength) == ("disabled", 2.5)
    assert c.dormant_touch == "new-session-only" and c.port == 0 and c.log_level == "debug"
    assert c.upstream_url == "http://127.0.0.1:9999/backend-api"  # trailing slash dropped
    assert c.max_body_bytes == 512 * 1024 and c.quota_low_percent == 25
    assert c.notifications.quota_low and not c.notifications.needs_login
    assert c.notifications.enabled("pool-exhausted") and not c.notifications.enabled("needs_login")


@pytest.mark.parametrize("value, expected", [(True, "always"), (False, "disabled")])
def test_legacy_boolean_dormant_touch(value: bool, expected: str) -> None:
    config, problems = validate({"dormant-touch": value})
    assert config.dormant_touch == expected and problems == []


def test_each_bad_key_falls_back_alone() -> None:
    config, problems = validate({
        "port": "abc", "fast-mode": "nope", "sticky-strength": -1, "fast-mode-bias": "more",
        "sticky-mode": "always", "max-body-mb": 0, "quota-low-percent": 101, "log-level": "loud",
        "allow-remote": "yes", "upstream-url": "ftp://example.com", "auth-url": 5,
    })
    assert config == Config(sticky_mode="always")
    assert '"port" must be an integer from 0 to 65535 (got "abc"); using 4455' in problems
    assert '"fast-mode" must be "auto", "always" or "disabled" (got "nope"); using "auto"' in problems
    assert '"sticky-strength" must be a number >= 0 (got -1); using 1' in problems
    assert '"fast-mode-bias" must be a finite number (got "more"); using 0' in problems
    assert '"max-body-mb" must be a number greater than 0 (got 0); using 64' in problems
    assert '"quota-low-percent" must be a number from 0 to 100 (got 101); using 10' in problems
    assert any(p.startswith('"log-level" must be "debug", "info", "warning" or "error"') for p in problems)
    assert '"allow-remote" must be true or false (got "yes"); using false' in problems
    assert any(p.startswith('"upstream-url" must be an http:// or https:// URL') for p in problems)
    assert any(p.startswith('"auth-url"') for p in problems)
    assert len(problems) == 10


def test_numbers_reject_booleans_and_non_finite() -> None:
    _, problems = validate({"fast-mode-bias": True, "sticky-strength": float("inf"), "port": 4455.0})
    assert len(problems) == 3


def test_unknown_keys_are_problems() -> None:
    config, problems = validate({"fast_mode": "always", "notifications": {"loud": True}})
    assert config == Config()
    assert problems == ['unknown key "fast_mode" (ignored)', 'unknown key "notifications.loud" (ignored)']
    _, problems = validate({"notifications": "off"})
    assert problems == [
        '"notifications" must be a table of true/false switches (got "off"); using the defaults'
    ]


def test_a_non_loopback_host_needs_allow_remote() -> None:
    config, problems = validate({"host": "0.0.0.0"})
    assert config.host == "127.0.0.1" and len(problems) == 1 and "allow-remote" in problems[0]
    config, problems = validate({"host": "0.0.0.0", "allow-remote": True})
    assert (config.host, problems) == ("0.0.0.0", [])
    assert validate({"host": "::1"})[1] == [] and validate({"host": "localhost"})[1] == []


def test_invalid_toml_gives_defaults_and_one_problem_and_leaves_the_file(tmp_path: Path) -> None:
    text = 'fast-mode = "always"\nport = \n'
    path = write(tmp_path / "config.toml", text)
    loaded = load_config(path)
    assert loaded.config == Config()
    assert len(loaded.messages) == 1
    assert str(path) in loaded.messages[0] and "not valid TOML" in loaded.messages[0]
    assert loaded.messages[0].endswith("; using the defaults for every key")
    assert path.read_text() == text


def test_save_keeps_the_users_values_and_unknown_keys(tmp_path: Path) -> None:
    text = 'sticky-mode = "always"\nmystery = 3\n[notifications]\nquota-low = true\n'
    path = write(tmp_path / "config.toml", text)
    path.chmod(0o600)
    loaded = save_config(path, {"port": 5000, "notifications.needs-login": False})
    assert loaded.config.port == 5000 and loaded.config.sticky_mode == "always"
    assert loaded.messages == ('unknown key "mystery" (ignored)',)
    again = load_config(path)
    assert again.config == loaded.config
    assert tomllib.loads(path.read_text())["mystery"] == 3
    assert again.config.notifications.quota_low and not again.config.notifications.needs_login
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    save_config(path, {"notifications": {"quota-low": False}})
    assert not load_config(path).config.notifications.quota_low


def test_save_refuses_bad_values_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    load_config(path)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as caught:
        save_config(path, {"port": 70000, "fast-mode": "turbo", "colour": "blue"})
    message = str(caught.value)
    assert '"port" must be an integer' in message and '"fast-mode"' in message and '"colour"' in message
    assert path.read_bytes() == before
    with pytest.raises(ConfigError, match="allow-remote"):
        save_config(path, {"host": "192.168.1.5"})
    assert save_config(path, {"host": "192.168.1.5", "allow-remote": True}).config.host == "192.168.1.5"
    with pytest.raises(ConfigError, match="allow-remote"):
        save_config(path, {"allow-remote": False})  # would strand the remote host
    with pytest.raises(ConfigError, match='"notifications" must be a table'):
        save_config(path, {"notifications": "off"})


def test_save_refuses_to_overwrite_an_unparsable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "this is = = not toml\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        save_config(path, {"port": 5000})
    assert path.read_text() == "this is = = not toml\n"


def test_save_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.toml"
    assert save_config(path, {"log-level": "warning"}).config.log_level == "warning"
    assert load_config(path).config == Config(log_level="warning")


def test_rendered_defaults_round_trip() -> None:
    custom = Config(
        fast_mode="disabled", fast_mode_bias=-0.02, port=0, notifications=Notifications(quota_low=True)
    )
    assert validate(tomllib.loads(render_config(custom))) == (custom, [])


def test_every_key_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [key for key in KEYS if f"`{key.split('.', 1)[-1]}`" not in doc]
    assert missing == [], f"document these keys in docs/configuration.md: {missing}"


def test_a_refused_save_names_each_key_and_leaves_the_file_byte_for_byte(tmp_path: Path) -> None:
    text = "# mine\r\nport = 4455   # note\r\n\r\n[notifications]\r\nquota-low = true\r\n"
    path = tmp_path / "config.toml"
    path.write_bytes(text.encode())
    with pytest.raises(SettingsRejected) as caught:
        save_config(path, {"port": 70000, "sticky-mode": "disabled", "notifications": {"loud": True}})
    assert caught.value.problems == {
        "port": '"port" must be an integer from 0 to 65535 (got 70000).',
        "notifications.loud": 'Unknown key "notifications.loud".',
    }
    assert path.read_bytes() == text.encode()


def test_a_save_edits_only_the_changed_key_and_keeps_windows_line_ends(tmp_path: Path) -> None:
    text = "# mine\r\nport = 4455   # note\r\nsticky-mode = 'always'\r\n"
    path = tmp_path / "config.toml"
    path.write_bytes(text.encode())
    save_config(path, {"port": 5000, "sticky-mode": "always", "fast-mode": "auto"})  # two unchanged
    assert path.read_bytes() == text.replace("4455", "5000").encode()


def test_a_save_that_changes_nothing_does_not_write(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "port = 4455\nlog-level = 'DEBUG'\n")
    before = path.stat()
    loaded = save_config(path, {"port": 4455, "log-level": "debug", "sticky-mode": "auto"})
    assert loaded.config.log_level == "debug" and loaded.problems == ()
    after = path.stat()  # an atomic write would have put a new file (inode) in its place
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_bad_value_in_the_file_is_replaced_even_by_its_default(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", 'port = "abc"  # oops\nnotifications = "off"\n')
    assert [p.key for p in load_config(path).problems] == ["port", "notifications"]
    save_config(path, {"port": 4455, "notifications": {"quota-low": False}})
    assert load_config(path).problems == ()
    assert path.read_text().startswith("port = 4455  # oops\n")


def test_upstream_proxy_takes_direct_or_a_proxy_url_and_never_shows_its_password() -> None:
    for value, kept in (("", ""), (" Direct ", "direct"), ("proxy.corp:3128", "http://proxy.corp:3128"),
                        ("socks5h://u:pw@socks.corp:1080", "socks5h://u:pw@socks.corp:1080")):
        config, problems = validate({"upstream-proxy": value})
        assert (config.upstream_proxy, problems) == (kept, [])
    for bad in ("ftp://u:s3cret@proxy:21", "http://u:s3cret@proxy:99999", "http://u:s3cret@proxy/path", 3128):
        config, problems = validate({"upstream-proxy": bad})
        assert config.upstream_proxy == ""
        [problem] = problems
        assert problem.startswith("\"upstream-proxy\" must be \"direct\" or a proxy URL")
        assert "s3cret" not in problem


def test_a_url_the_standard_library_cannot_split_is_a_named_problem(tmp_path: Path) -> None:
    # An unclosed IPv6 bracket made urlsplit raise, and loading the file crashed instead of
    # naming the key (found by the config fuzz test).
    path = tmp_path / "config.toml"
    text = ('upstream-proxy = "http://u:s3cret@["\nupstream-url = "https://[::1"\n'
            'auth-url = "http://[x"\nport = 4455\n')
    path.write_text(text, encoding="utf-8")
    loaded = load_config(path)
    assert sorted(p.key for p in loaded.problems) == ["auth-url", "upstream-proxy", "upstream-url"]
    assert loaded.config.port == 4455 and loaded.config.upstream_proxy == ""
    assert all("s3cret" not in str(p) for p in loaded.problems)
    assert path.read_text(encoding="utf-8") == text
