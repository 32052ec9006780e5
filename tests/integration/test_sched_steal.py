"""Steal (bpf/sched.bpf.c "Steal"): the part of a thread's on-CPU time the hypervisor did not
run its vCPU is recorded as steal_ns, apart from cpu_ns, and agrees with the kernel's own
count of it (/proc/stat's steal column), read by the workload around a stretch where every
CPU is busy. On a quiet host both are about zero: that checks the other way round, that the
split adds no steal of its own (the switch-time clocks differ by microseconds and only a
shortfall becomes steal)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.recording import record
from tracer import schema

pytestmark = pytest.mark.bpf
SPINNERS = Path(__file__).with_name("steal_spinners.py")


def test_recorded_steal_is_the_kernels_steal(tmp_path: Path) -> None:
    out, truth_file = tmp_path / "t", tmp_path / "truth.json"
    record(out, [sys.executable, str(SPINNERS), str(truth_file), "3"], "--sched")
    truth = json.loads(truth_file.read_text())
    trace = schema.load(out)
    assert trace.meta["sched"]["hooks"].get("task_exec_offset"), trace.meta["sched"]["hooks"]
    s = trace.table("sched")
    start = np.asarray(s["start_ns"], dtype=np.float64)
    end = np.asarray(s["end_ns"], dtype=np.float64)
    steal = np.asarray(s["steal_ns"].fill_null(0), dtype=np.float64)
    cpu = np.asarray(s["cpu_ns"], dtype=np.float64)
    t0, t1 = float(truth["t0_ns"]), float(truth["t1_ns"])
    # each row's steal pro rata to its overlap with the busy stretch (a mixed row spreads it)
    share = np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0, None) / \
        np.maximum(end - start, 1)
    recorded_ms = float((steal * share).sum()) / 1e6
    busy_ms = float(((cpu + steal) * share).sum()) / 1e6
    # every CPU was busy: what the threads had on CPU is about ncpu x the stretch
    assert busy_ms >= 0.9 * truth["ncpu"] * (t1 - t0) / 1e6, (busy_ms, truth)
    # the kernel counts whole ticks per CPU: one tick off at each end, per CPU
    slack_ms = 2 * truth["ncpu"] * truth["tick_ms"] + 0.1 * truth["steal_ms"]
    assert abs(recorded_ms - truth["steal_ms"]) <= slack_ms, (recorded_ms, truth)
    print(f"steal: recorded {recorded_ms:.1f} ms, /proc/stat {truth['steal_ms']} ms")
