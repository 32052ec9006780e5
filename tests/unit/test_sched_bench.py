"""bench/ for the sched concern: modules import, the ping-pong really storms (no timing)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["bench.sched_overhead", "bench.workload_pingpong"])
def test_sched_bench_modules_import(module: str) -> None:
    sys.path.insert(0, str(ROOT))
    assert hasattr(importlib.import_module(module), "main")


def test_pingpong_does_its_trips_and_counts_switches() -> None:
    p = subprocess.run([sys.executable, "-m", "bench.workload_pingpong", "--trips", "2000"],
                       capture_output=True, text=True, cwd=ROOT, check=True, timeout=60)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["trips"] == 2000 and out["wall_s"] > 0
    # each side blocks in read() at least once per few trips: switches are real and counted
    assert out["switches"] >= 100, out
    # CPU time of both processes (schedstat): some, and at most both of them all the time
    assert 0 < out["cpu_s"] <= 2 * out["wall_s"] * 1.1 + 0.01, out
