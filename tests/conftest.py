"""
Under CI (``CI=true``) a skipped test fails: CI must run everything it can,
so a skip there means something is missing, not something to hide.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI, which must run every test: {report.longrepr}"
        )
    return report
