"""Which forward proxy each upstream connection takes: worked examples (pure)."""

from __future__ import annotations

import pytest

from tray.proxy.egress import BadProxy, Egress, check, exempt, from_settings, problems, redacted

CORP = "http://user:pw@proxy.corp:3128"


def test_the_environment_sets_a_proxy_per_scheme_lower_case_first() -> None:
    env = {"HTTPS_PROXY": CORP, "http_proxy": "http://plain:8080", "HTTP_PROXY": "http://ignored:1",
           "ALL_PROXY": "socks5h://socks:1080"}
    egress = from_settings(env)
    assert egress.proxy_for("https", "chatgpt.com") == CORP
    assert egress.proxy_for("http", "chatgpt.com") == "http://plain:8080"
    assert egress.source == "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY"
    only_all = from_settings({"all_proxy": "socks5://socks:1080"})
    assert only_all.proxy_for("https", "auth.openai.com") == "socks5://socks:1080"
    assert from_settings({}).proxies == () and from_settings({}).proxy_for("https", "chatgpt.com") is None


def test_the_config_key_overrides_the_environment() -> None:
    env = {"HTTPS_PROXY": CORP, "NO_PROXY": "internal.example"}
    mine = from_settings(env, "http://mine:3128")
    assert mine.proxy_for("https", "chatgpt.com") == "http://mine:3128"
    assert mine.proxy_for("https", "internal.example") is None  # NO_PROXY still applies
    assert mine.source == "upstream-proxy"
    assert from_settings(env, "direct").proxy_for("https", "chatgpt.com") is None
    assert from_settings(env, "proxy.corp:8080").proxy_for("https", "x.com") == "http://proxy.corp:8080"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST.", "::1", "[::1]",
                                  "api.localhost"])
def test_loopback_is_never_proxied(host: str) -> None:
    assert Egress(http=CORP, https=CORP).proxy_for("https", host) is None


@pytest.mark.parametrize(("entry", "host", "port", "direct"), [
    ("*", "chatgpt.com", 443, True),
    ("chatgpt.com", "chatgpt.com", 443, True),
    ("chatgpt.com", "ab.chatgpt.com", 443, True),
    ("chatgpt.com", "notchatgpt.com", 443, False),
    (".chatgpt.com", "chatgpt.com", 443, False),
    (".chatgpt.com", "ab.chatgpt.com", 443, True),
    ("*.chatgpt.com", "ab.chatgpt.com", 443, True),
    ("10.0.0.0/8", "10.2.3.4", 443, True),
    ("10.0.0.0/8", "11.2.3.4", 443, False),
    ("chatgpt.com:8443", "chatgpt.com", 443, False),
    ("chatgpt.com:443", "chatgpt.com", 443, True),
    ("[2001:db8::1]:443", "2001:db8::1", 443, True),
])
def test_no_proxy_entries(entry: str, host: str, port: int, direct: bool) -> None:
    assert exempt((entry,), host, port) is direct
    assert (from_settings({"HTTPS_PROXY": CORP, "no_proxy": f" other.example , {entry}"})
            .proxy_for("https", host, port) is None) is direct


def test_bad_settings_are_refused_without_their_password() -> None:
    assert check(" DIRECT ") == "direct" and check("") == ""
    for bad in ("ftp://user:pw@proxy:21", "http://user:pw@proxy:99999", "http://user:pw@proxy/path"):
        with pytest.raises(BadProxy) as found:
            check(bad)
        assert "pw" not in str(found.value)
    [problem] = problems({"HTTPS_PROXY": "ftp://user:pw@proxy:21", "HTTP_PROXY": CORP})
    assert problem.startswith("HTTPS_PROXY must be") and "***@proxy:21" in problem and "pw" not in problem
    assert from_settings({"HTTPS_PROXY": "ftp://user:pw@proxy:21"}).proxies == ()  # ignored, not half-used


def test_redacted_hides_user_and_password_only() -> None:
    assert redacted(CORP) == "http://***@proxy.corp:3128"
    assert redacted("socks5h://u@h:1/x") == "socks5h://***@h:1/x"
    assert redacted("http://proxy:3128") == "http://proxy:3128"


def test_a_url_with_an_unclosed_bracket_is_a_bad_setting_not_a_crash() -> None:
    # urlsplit raises on "http://[": the variable is ignored and named, like any bad one.
    env = {"HTTPS_PROXY": "http://user:pw@[", "HTTP_PROXY": CORP}
    assert from_settings(env).proxy_for("https", "chatgpt.com") is None
    assert from_settings(env).proxy_for("http", "chatgpt.com") == CORP
    [problem] = problems(env)
    assert problem.startswith("HTTPS_PROXY must be") and "pw" not in problem
