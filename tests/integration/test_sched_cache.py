"""The scheduler concern loads from the bytecode cache (issue 15 step 3): its stop-time map
work (freeze flag, missed-switch counters, the final read of every thread's entry) goes
through plain bpf() syscalls on map fds, so a cached load records exactly what a BCC
compile does. Ground truth: the planted spin / sleep / fsync of the kernel matrix
(tests/kernels/sched_planted.py), which logs its own clocks."""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import pytest

from tests.integration.recording import ROOT, record
from tracer import schema
from tracer.analyzer.sched import SchedIndex
from tracer.collector import bpfcache

pytestmark = pytest.mark.bpf

PLANTED = ROOT / "tests" / "kernels" / "sched_planted.py"
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_F_MMAPABLE = 1, 2, 1 << 10


def test_map_primitives_read_what_was_written() -> None:
    """keys() walks a hash map, read_mmapable_array() copies an array: checked against
    values written through the same fds with BPF_MAP_UPDATE_ELEM."""
    h = bpfcache._create_map({"type": BPF_MAP_TYPE_HASH, "key_size": 4, "value_size": 16,
                              "max_entries": 64, "flags": 0, "name": "t_hash"})
    a = bpfcache._create_map({"type": BPF_MAP_TYPE_ARRAY, "key_size": 4, "value_size": 12,
                              "max_entries": 1000, "flags": BPF_F_MMAPABLE, "name": "t_arr"})
    try:
        want = {k: struct.pack("<QQ", k * 7, k + 1) for k in (3, 99, 1 << 20)}
        for k, v in want.items():
            bpfcache.update(h, struct.pack("<I", k), v)
        got = {struct.unpack("<I", k)[0]: bpfcache.lookup(h, k, 16)
               for k in bpfcache.keys(h, 4)}
        assert got == want
        for i in (0, 1, 999):
            bpfcache.update(a, struct.pack("<I", i), struct.pack("<III", i, 2 * i, 0xABCD))
        raw = bpfcache.read_mmapable_array(a, 12, 1000)
        assert len(raw) == 16 * 1000  # values are 8-aligned in an array map
        for i in (0, 1, 999):
            assert struct.unpack_from("<III", raw, 16 * i) == (i, 2 * i, 0xABCD)
        assert struct.unpack_from("<III", raw, 16 * 500) == (0, 0, 0)
    finally:
        os.close(h)
        os.close(a)


def _check(trace_dir: Path, truth: dict[str, object]) -> schema.Trace:
    trace = schema.load(trace_dir)
    assert trace.lost_events == 0
    assert trace.meta["probes"]["sched"] == "attached"
    pid = int(truth["pid"])  # type: ignore[call-overload]
    ix = SchedIndex.from_trace(trace)
    spin, sleep = truth["spin"], truth["sleep"]
    assert isinstance(spin, dict) and isinstance(sleep, dict)
    st = ix.states_between(pid, spin["t0"], spin["t1"])
    assert abs(st["cpu"] - spin["cpu_ns"]) <= 0.10 * spin["cpu_ns"], (st, spin)
    st = ix.states_between(pid, sleep["t0"], sleep["t1"])
    assert st["sleep"] >= 0.85 * (sleep["t1"] - sleep["t0"]), (st, sleep)
    waker = ix.waker_at(pid, sleep["t1"], max_lag_ns=50_000_000)
    assert waker is not None and waker.kind == "timer", waker
    fsyncs = [r for r in trace.table("blockio").to_pylist()
              if r["kind"] == "fsync" and r["pid"] == pid]
    assert len(fsyncs) == 1, fsyncs
    # the final read of the thread entries: threads alive at the stop end at the freeze
    end = trace.meta["sched"]["end_ns"]
    open_rows = [r for r in trace.table("sched").to_pylist() if r["origin"] == "open"]
    assert open_rows and all(r["end_ns"] <= end for r in open_rows)
    assert any(r["end_ns"] == end for r in open_rows)
    missed = trace.meta["sched"]["missed_switches"]
    assert set(missed) == {"switch_out", "switch_in"}
    return trace


def test_sched_recording_loads_from_the_cache_and_records_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K3SPROF_BPF_CACHE", str(tmp_path / "cache"))  # empty: BCC compiles
    for run, source in ((0, "bcc"), (1, "cache")):
        out = tmp_path / f"t{run}"
        truth_file = tmp_path / f"truth{run}.json"
        record(out, [sys.executable, str(PLANTED), str(truth_file),
                     str(tmp_path / "fsync.data")])
        trace = _check(out, json.loads(truth_file.read_text()))
        assert trace.meta["bpf_loaded_from"] == source, trace.meta.get("bpf_cache_note")
