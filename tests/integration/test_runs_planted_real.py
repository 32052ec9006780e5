"""compare finds a planted difference between two sets of REAL recordings (real BPF, real
processes): five runs of a small startup whose delay is a parameter (A: 250 ms, B: 400 ms, each
with seeded noise of sd 20 ms), the machine's own jitter on top. The interval must contain the
planted 150 ms and exclude 0. (The same-distribution half of the done-when is checked on
runs made from a real recording: tests/unit/test_runs_compare.py.)"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.integration.recording import record
from tracer.cli import main

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

PLANTED_S = 0.150


def startup(delay_s: float) -> list[str]:
    """A small startup: a shell that waits `delay_s` in a helper, then starts its service (a
    second helper that runs briefly): the critical path is the two helpers' lives."""
    return ["sh", "-c", f"sleep {delay_s:.3f}; sleep 0.05"]


def test_planted_difference_in_real_recordings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(2027)
    for side, base in (("a", 0.250), ("b", 0.250 + PLANTED_S)):
        for i in range(5):
            delay = base + rng.gauss(0, 0.020)
            record(tmp_path / side / f"{i:03d}-run" / "trace", startup(delay))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json",
                 "--workers", "1"]) == 0
    c = json.loads(capsys.readouterr().out)
    total = next(m for m in c["metrics"] if m["name"] == "total")
    print(f"\nplanted {PLANTED_S * 1e3:.0f} ms: medians A {total['a']['median_ns'] / 1e6:.1f} ms, "
          f"B {total['b']['median_ns'] / 1e6:.1f} ms, diff {total['diff_ns'] / 1e6:.1f} ms, "
          f"95 % interval {[round(x / 1e6, 1) for x in total['diff_ci_ns'] or []]} ms")
    assert total["a"]["n"] == total["b"]["n"] == 5, total
    low, high = total["diff_ci_ns"]
    assert low <= PLANTED_S * 1e9 <= high, total
    assert low > 0 and total["significant"] is True
    # the path is the two sleeps: the child waits carry the difference
    child = next(m for m in c["metrics"] if m["name"] == "path:wait:child")
    assert child["significant"] is True
