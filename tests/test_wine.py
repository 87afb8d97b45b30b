"""The platform code on real Windows CPython: the official embeddable Python 3.11.9 for Windows,
run under Wine (tests/support/wine.py). ``sys.platform`` is ``win32`` there, ``os.fchmod`` is
missing, files are opened without FILE_SHARE_DELETE, sockets are Winsock's and the registry is a
registry, so the Windows branches run as they would for a user.

What runs there: the Windows checks (tests/windows/checks.py: sharing violations, kernel32
liveness, exclusive binds, ``WCHAR[128]`` tooltips, the Run key) and the pure test modules, which
must pass on every OS. What Wine cannot show (the tray icon, toasts, WebView2, SmartScreen) is on
the release checklist in docs/install.md.
"""

from __future__ import annotations

import re

import pytest

from tests.support.wine import windows_python

ON_WINDOWS = [
    "tests/windows/checks.py",
    "tests/autostart/test_texts.py",
    "tests/routing",
    "tests/desktop/test_menu.py",
    "tests/quota/test_usage.py",
    "tests/quota/test_signals.py",
    "tests/auth/test_pkce.py",
    "tests/auth/test_claims.py",
    "tests/clients/test_texts.py",
    "tests/forecast/test_pace.py",
]
# It runs desktop-file-validate, a Linux tool.
LINUX_ONLY = "tests/autostart/test_texts.py::test_desktop_entry_starts_the_command_and_validates"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_platform_code_passes_on_real_windows_python() -> None:
    python = windows_python()
    version = python.run("-c", "import sys, os; print(sys.platform, sys.version_info[:2], "
                               "hasattr(os, 'fchmod'))")
    assert version.stdout.split() == ["win32", "(3,", "11)", "False"], version.stdout + version.stderr
    run = python.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest", "-rs",
                     *ON_WINDOWS, "--deselect", LINUX_ONLY, timeout=540)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert re.fullmatch(r"=* ?\d+ passed(, \d+ deselected)? in [\d.]+s ?=*", summary), summary
