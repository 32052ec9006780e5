"""The CI skip policy of tests/conftest.py, run on small test files in a child pytest: in CI a
skip fails unless it is allow-listed, and the summary line counts the allowed ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CI_ALLOWED_SKIPS, ROOT

KEY = next(iter(CI_ALLOWED_SKIPS))
TESTS = f"""
import pytest
from tests.conftest import allowed_skip

def test_passes():
    assert True

def test_plain_skip():
    pytest.skip("strace not installed")

@pytest.mark.skipif(True, reason="needs gcc")
def test_skipif():
    pass

def test_allowed():
    allowed_skip({KEY!r}, "this kernel has no loadable modules")
"""


def child_pytest(
    tmp_path: Path, ci: str | None, body: str = TESTS
) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_policy_sample.py"
    test.write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), str(test)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def summary(p: subprocess.CompletedProcess[str]) -> str:
    return p.stdout.strip().splitlines()[-1]


def test_in_ci_only_allow_listed_skips_pass(tmp_path: Path) -> None:
    p = child_pytest(tmp_path, "true")
    assert p.returncode == 1, p.stdout
    # a skipif fires while setting the test up: pytest calls that an error, a failure too
    assert summary(p).startswith("1 failed, 1 passed, 1 error, 1 allowed skip"), p.stdout
    assert "not on CI_ALLOWED_SKIPS" in p.stdout and "strace not installed" in p.stdout
    assert "needs gcc" in p.stdout
    assert f"[allowed in CI: {KEY}] this kernel has no loadable modules" in p.stdout


def test_outside_ci_skips_are_skips(tmp_path: Path) -> None:
    p = child_pytest(tmp_path, None)
    assert p.returncode == 0, p.stdout
    assert summary(p).startswith("1 passed, 2 skipped, 1 allowed skip"), p.stdout


def test_a_module_level_skip_fails_in_ci(tmp_path: Path) -> None:
    body = 'import pytest\n\npytest.importorskip("no_such_module_k3sprof")\n\ndef test_x(): pass\n'
    p = child_pytest(tmp_path, "1", body)
    assert p.returncode != 0 and "no_such_module_k3sprof" in p.stdout, p.stdout


XFAILS = f"""
import pytest
from tests.conftest import allowed_xfail

@pytest.mark.xfail(reason="flaky under load")
def test_marked():
    assert False

def test_imperative():
    pytest.xfail("not built yet")

def test_allowed():
    allowed_xfail({KEY!r}, "this kernel has no loadable modules")
"""


def test_in_ci_an_xfail_fails_unless_allow_listed(tmp_path: Path) -> None:
    p = child_pytest(tmp_path, "true", XFAILS)
    assert p.returncode == 1, p.stdout
    assert summary(p).startswith("2 failed, 1 allowed skip"), p.stdout
    assert "expected to fail (xfail) in CI" in p.stdout
    assert "flaky under load" in p.stdout and "not built yet" in p.stdout


def test_outside_ci_an_xfail_is_an_xfail(tmp_path: Path) -> None:
    p = child_pytest(tmp_path, None, XFAILS)
    assert p.returncode == 0, p.stdout
    assert summary(p).startswith("2 xfailed, 1 allowed skip"), p.stdout


def test_an_unknown_allow_list_key_is_an_error() -> None:
    from tests.conftest import allowed_skip

    with pytest.raises(KeyError, match="not in CI_ALLOWED_SKIPS"):
        allowed_skip("gcc-missing", "needs gcc")
