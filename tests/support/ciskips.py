"""In CI (``CI=true``) a test that does not run fails the run, wherever the skip comes from.

A skip in a test body, in a fixture, from a ``skipif`` mark, an ``xfail``, or a whole module skipped
while it is collected (``pytest.importorskip`` at module level, which never reaches
``pytest_runtest_makereport``): each is a missing tool or library that ``./dev`` should have
installed, or a test that quietly stopped testing. On a developer's machine a skip stays a skip.

Test skips become failures in their own report; collection skips are listed at the end of the run
and turn its exit status into "tests failed". :data:`ALLOWED` holds the reviewed exceptions (node id
prefix → why); keep it empty unless a test truly cannot run on the CI machine.

Loaded as a plugin by ``tests/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

ALLOWED: dict[str, str] = {}


def _allowed(nodeid: str) -> bool:
    return any(nodeid.startswith(prefix) for prefix in ALLOWED)


def _reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: why")
        return str(longrepr[2])
    return str(longrepr)


class SkipsFail:
    """The CI rule as a plugin object (registered only when ``CI=true``)."""

    def __init__(self) -> None:
        self.collection_skips: list[pytest.CollectReport] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not report.skipped or _allowed(item.nodeid):
            return report
        xfail = getattr(report, "wasxfail", None)
        why = f"xfail: {xfail}" if xfail is not None else _reason(report.longrepr)
        if xfail is not None:
            del report.wasxfail  # else pytest still counts it as an expected failure
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: did not run in CI, where every test must ({why})"
        return report

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped and not _allowed(report.nodeid):
            self.collection_skips.append(report)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.collection_skips:
            terminalreporter.section("skipped while collecting: fails the run in CI", red=True)
            for report in self.collection_skips:
                terminalreporter.line(f"{report.nodeid}: {_reason(report.longrepr)}", red=True)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.collection_skips and session.exitstatus in (pytest.ExitCode.OK,
                                                             pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") == "true":
        config.pluginmanager.register(SkipsFail(), "ciskips-fail")
