"""Test tiers: unit (default, no root, no bcc) and integration (marked; need root / BPF).

Skips always say why, and are decided by capability, not platform name.

In CI (``CI`` set to 1/true/yes) every skip is a FAILURE unless it is on the allow-list below:
CI runs as root on a machine ``make setup`` prepared, so a skip there would hide a broken setup.
Marked tests (bpf/root/browser) are then not skipped for a missing capability at all, and any
``pytest.skip`` / ``skipif`` / ``importorskip`` that fires is turned into a failure that names
the skip. A skip that may legitimately happen in CI calls :func:`allowed_skip` with a key of
:data:`CI_ALLOWED_SKIPS`; the summary line counts those as ``allowed skip``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: The only skips CI accepts: key -> why this CI machine may lack it (README, Development).
#: Keep it short; a new entry needs a reason the machine, not the setup, imposes.
CI_ALLOWED_SKIPS: dict[str, str] = {
    "no-loadable-modules": (
        "the CI kernel is built without CONFIG_MODULES (no module tracepoints, no init_module "
        "syscalls), so a module load cannot be recorded; the recorder's 'unavailable' path is "
        "tested instead, real loads run in the Vagrant lab"
    ),
}
_ALLOWED_TAG = "[allowed in CI: {key}] "
#: the report category (summary line word) of an allow-listed skip
ALLOWED_SKIP = "allowed skip"


def allowed_skip(key: str, reason: str) -> None:
    """Skip for a reason on the CI allow-list (KeyError for a key that is not on it)."""
    if key not in CI_ALLOWED_SKIPS:
        raise KeyError(f"{key!r} is not in CI_ALLOWED_SKIPS (tests/conftest.py)")
    pytest.skip(_ALLOWED_TAG.format(key=key) + reason)


def allowed_xfail(key: str, reason: str) -> None:
    """Expect the rest of the test to fail, for a reason on the CI allow-list (KeyError for a
    key that is not on it); any other xfail fails in CI like a skip does."""
    if key not in CI_ALLOWED_SKIPS:
        raise KeyError(f"{key!r} is not in CI_ALLOWED_SKIPS (tests/conftest.py)")
    pytest.xfail(_ALLOWED_TAG.format(key=key) + reason)


def _allowed_key(reason: str) -> str | None:
    for key in CI_ALLOWED_SKIPS:
        if reason.startswith(_ALLOWED_TAG.format(key=key)):
            return key
    return None


def _skip_reason(longrepr: object) -> str:
    # a skip's longrepr is (path, lineno, "Skipped: <reason>")
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _bpf_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (run: sudo make test)"
    if not Path("/sys/kernel/tracing/events").exists():
        return "tracefs not mounted (run: sudo make setup)"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "python3-bpfcc not importable (run: sudo make setup)"
    return None


def _browser_missing() -> str | None:
    return None if shutil.which("chromium") else "chromium not installed (run: sudo make setup)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {
        "bpf": _bpf_missing(),
        "root": None if os.geteuid() == 0 else "needs root (run: sudo make test)",
        "browser": _browser_missing(),
    }
    if IN_CI:
        return  # CI prepared the machine: a missing capability must fail, not skip
    for item in items:
        for mark, reason in reasons.items():
            if reason and mark in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


def _ci_verdict(report: pytest.TestReport | pytest.CollectReport) -> None:
    """In CI, a skip or an expected failure (an xfail marker, ``pytest.xfail()``) that is not
    allow-listed becomes a failure that says which one it was: an xfail hides a test as well as
    a skip does. Allow-listed ones go through :func:`allowed_skip` / :func:`allowed_xfail`."""
    if not (IN_CI and report.skipped):
        return
    xfail = getattr(report, "wasxfail", None)
    if xfail is not None:
        # the marker's reason, or "reason: <text>" for pytest.xfail(); either may be tagged
        reason = str(xfail).removeprefix("reason: ")
        what = "expected to fail (xfail)"
    else:
        reason = _skip_reason(report.longrepr)
        what = "skipped"
    if _allowed_key(reason) is None:
        report.outcome = "failed"
        if xfail is not None:
            del report.wasxfail
        report.longrepr = (
            f"{what} in CI, which is a failure (not on CI_ALLOWED_SKIPS in tests/conftest.py): "
            f"{reason}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    _ci_verdict(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, None]:
    outcome = yield  # a module-level skip or importorskip
    _ci_verdict(outcome.get_result())


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    if not report.skipped:
        return None
    xfail = getattr(report, "wasxfail", None)
    reason = (str(xfail).removeprefix("reason: ") if xfail is not None
              else _skip_reason(report.longrepr))
    if _allowed_key(reason) is not None:
        return ALLOWED_SKIP, "a", "ALLOWED SKIP"
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    allowed = terminalreporter.stats.get(ALLOWED_SKIP, [])
    if not allowed:
        return
    terminalreporter.section("skips allowed in CI (tests/conftest.py CI_ALLOWED_SKIPS)")
    for rep in allowed:
        terminalreporter.line(f"{rep.nodeid}: {_skip_reason(rep.longrepr)}")
