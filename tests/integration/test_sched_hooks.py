"""The sched concern's two hook paths record the same truth (issue 24): raw tracepoints
(task_struct.pid from the kernel's BTF, prev_state a raw argument) and the tracepoint
programs (the fallback), each against the planted spin / sleep / fsync's own clocks
(tests/kernels/sched_planted.py), each also loaded from the bytecode cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration.recording import record
from tests.integration.test_sched_cache import PLANTED, _check

pytestmark = pytest.mark.bpf


@pytest.mark.parametrize("hooks", ["raw_tracepoint", "tracepoint"])
def test_both_hook_paths_record_the_planted_truth(
        hooks: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K3SPROF_BPF_CACHE", str(tmp_path / "cache"))  # BCC, then the cache
    flag = "raw" if hooks == "raw_tracepoint" else "tracepoint"
    for run, source in ((0, "bcc"), (1, "cache")):
        out = tmp_path / f"t{run}"
        truth_file = tmp_path / f"truth{run}.json"
        record(out, [sys.executable, str(PLANTED), str(truth_file),
                     str(tmp_path / "fsync.data")], "--sched-hooks", flag)
        trace = _check(out, json.loads(truth_file.read_text()))
        meta = trace.meta
        assert meta["bpf_loaded_from"] == source, meta.get("bpf_cache_note")
        assert meta["sched"]["hooks"]["path"] == hooks, meta["sched"]["hooks"]
        progs = set(meta["programs"])
        raw = {"raw_tracepoint__sched_switch", "raw_tracepoint__sched_waking",
               "raw_tracepoint__sched_wakeup_new"}
        tps = {"tracepoint__sched__sched_switch", "tracepoint__sched__sched_waking",
               "tracepoint__sched__sched_wakeup_new"}
        assert (raw if hooks == "raw_tracepoint" else tps) <= progs
        assert not (tps if hooks == "raw_tracepoint" else raw) & progs


def test_auto_takes_raw_tracepoints_here(tmp_path: Path) -> None:
    """This kernel has BTF and raw tracepoints (docs/platform.md): the default is the raw path,
    with the offset the BTF gives."""
    from tracer.collector import btf

    out = tmp_path / "t"
    record(out, [sys.executable, "-c", "pass"])
    hooks = json.loads((out / "meta.json").read_text())["sched"]["hooks"]
    assert hooks["path"] == "raw_tracepoint", hooks
    assert hooks["task_pid_offset"] == btf.load().member_offset("task_struct", "pid")


def test_raw_programs_that_fail_to_load_fall_back_to_tracepoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a kernel whose BTF promises raw tracepoints WHEN the raw build fails to load
    (simulated: the loader refuses any plan with -DSCHED_RAW_TP) THEN the recorder goes live
    with the real tracepoint programs and its plan says why."""
    from tracer._errors import ProbeError
    from tracer.collector import probes, start

    real_load = probes.load

    def refuse_raw(plan: probes.ProbePlan, **kw: object) -> probes.Attached:
        if "-DSCHED_RAW_TP" in plan.cflags:
            raise ProbeError("BPF programs failed to compile or load: simulated")
        return real_load(plan, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(probes, "load", refuse_raw)
    live = start.go_live(start.RecordOptions(output=tmp_path / "t"))
    try:
        hooks = live.plan.sched_hooks
        assert hooks is not None and hooks["path"] == "tracepoint", hooks
        assert hooks["why"].startswith("fallback: raw tracepoint programs failed: "), hooks
        assert "tracepoint__sched__sched_switch" in live.bpf.program_fds()
        assert not live.bpf.raw_tracepoint_fds()
    finally:
        live.bpf.detach()
        live.bpf.close()
