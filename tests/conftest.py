"""Test tiers: unit (default, no root, no bcc) and integration (marked; need root / BPF).

Skips always say why, and are decided by capability, not platform name. In CI (CI=true) a
missing capability for a marked test is a FAILURE, not a skip: CI runs as root on a machine the
setup prepared, so a skip there would hide a broken setup.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
