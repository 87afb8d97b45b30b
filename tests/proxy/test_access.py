from __future__ import annotations

from tray.proxy.access import AccessPolicy, check_request, presented_key

KEY = "cp-secret"
POLICY = AccessPolicy(port=8765)


def headers(**kw: str) -> dict[str, str]:
    base = {"host": "127.0.0.1:8765", "authorization": f"Bearer {KEY}"}
    base.update({k.replace("_", "-"): v for k, v in kw.items()})
    return base


def test_bearer_or_x_api_key_is_accepted() -> None:
    assert check_request(POLICY, headers(), KEY) is None
    h = headers()
    del h["authorization"]
    h["x-api-key"] = KEY
    assert check_request(POLICY, h, KEY) is None
    assert presented_key({"authorization": "bearer  abc "}) == "abc"


def test_missing_or_wrong_key_is_refused_without_echoing_it() -> None:
    h = headers()
    del h["authorization"]
    denied = check_request(POLICY, h, KEY)
    assert denied is not None and denied.status == 401
    denied = check_request(POLICY, headers(authorization="Bearer nope"), KEY)
    assert denied is not None and denied.status == 401 and "nope" not in denied.message


def test_foreign_host_is_refused() -> None:
    for host in ("evil.example:8765", "127.0.0.1:9999", "", "127.0.0.1.nip.io:8765"):
        denied = check_request(POLICY, headers(host=host), KEY)
        assert denied is not None and denied.code == "forbidden_host", host
    assert check_request(POLICY, headers(host="localhost:8765"), KEY) is None
    assert check_request(POLICY, headers(host="[::1]:8765"), KEY) is None


def test_foreign_origin_is_refused_own_origin_allowed() -> None:
    denied = check_request(POLICY, headers(origin="https://evil.example"), KEY)
    assert denied is not None and denied.code == "forbidden_origin"
    assert check_request(POLICY, headers(origin="null"), KEY) is not None
    assert check_request(POLICY, headers(origin="http://127.0.0.1:8765"), KEY) is None


def test_remote_bind_accepts_any_host_only_when_allowed() -> None:
    remote = AccessPolicy(port=8765, bind_host="0.0.0.0", allow_remote=True)
    assert check_request(remote, headers(host="box.lan:8765"), KEY) is None
