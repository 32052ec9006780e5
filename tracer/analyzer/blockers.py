"""Top blockers (issue 15): what the processes of the analysis blocked on, summed, from the
``blockio`` and ``wakeup`` tables (record --sched). Columnar: pyarrow filters and group_by, no
per-row Python.

* ``fsync``: fsync / fdatasync / sync_file_range calls per process (calls, total and longest
  duration), calls entered inside the analysis window;
* ``wakeups``: the wakeup edges waker -> woken (processes, a woken thread's idle stretch of
  >= 1 ms ended by ANOTHER process), with how many there were, the idle time they ended (the
  part inside the window) and the longest, and how much of it the critical path spent in the
  waker (``path_ns``, its ``wait:wakeup`` segments).

Both are sorted by total time, longest first, and capped (the rest counted in ``left_out``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracer.analyzer.model import BlockersJson, FsyncJson, SegmentJson, WakeupEdgeJson
from tracer.analyzer.tree import Processes

SYNC_KINDS = ("fsync", "fdatasync", "sync_file_range")
TOP = 20


def blockers(
    blockio: pa.Table,
    wakeup: pa.Table,
    procs: Processes,
    pids: set[int] | None,
    lo: int,
    hi: int,
    path: Sequence[SegmentJson],
) -> BlockersJson:
    """The `blockers` section (see the module docstring). `pids`: the woken / calling processes
    to count (None: all); the wakers may be any process."""
    comm = _comms(procs)
    fsync, fsync_left_out = _fsyncs(blockio, comm, pids, lo, hi)
    wakeups, wakeups_left_out = _wakeups(wakeup, comm, pids, lo, hi, path)
    return {
        "start_ns": lo,
        "end_ns": hi,
        "fsync": fsync,
        "fsync_left_out": fsync_left_out,
        "wakeups": wakeups,
        "wakeups_left_out": wakeups_left_out,
    }


def _comms(procs: Processes) -> dict[int, str]:
    """pid -> comm of its latest instance (pids are reused rarely inside one startup)."""
    return {p.pid: p.comm for p in procs.procs if p.comm}


def _in(col: pa.ChunkedArray, pids: set[int] | None) -> Any:
    if pids is None:
        return pc.is_valid(col)
    return pc.is_in(col, pa.array(sorted(pids), pa.int32()))


def _fsyncs(t: pa.Table, comm: dict[int, str], pids: set[int] | None, lo: int,
            hi: int) -> tuple[list[FsyncJson], int]:
    if t.num_rows == 0:
        return [], 0
    ts = pc.cast(t["ts_ns"], pa.int64())
    m = pc.and_(pc.is_in(t["kind"].cast(pa.string()), pa.array(SYNC_KINDS)),
                pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi)))
    m = pc.fill_null(pc.and_(m, _in(t["pid"], pids)), False)
    sel = t.filter(m)
    if sel.num_rows == 0:
        return [], 0
    dur = pc.subtract(pc.cast(sel["end_ns"], pa.int64()), pc.cast(sel["ts_ns"], pa.int64()))
    g = pa.table({"pid": sel["pid"], "kind": sel["kind"].cast(pa.string()), "dur": dur})
    agg = g.group_by("pid").aggregate([("dur", "count"), ("dur", "sum"), ("dur", "max")])
    kinds = g.group_by(["pid", "kind"]).aggregate([("dur", "count")]).to_pylist()
    by_kind: dict[int, dict[str, int]] = {}
    for r in kinds:  # one row per (process, syscall): a handful
        by_kind.setdefault(int(r["pid"]), {})[r["kind"]] = int(r["dur_count"])
    rows = sorted(agg.to_pylist(), key=lambda r: (-int(r["dur_sum"] or 0), int(r["pid"])))
    return (
        [
            {
                "pid": int(r["pid"]),
                "comm": comm.get(int(r["pid"])),
                "calls": int(r["dur_count"]),
                "total_ns": int(r["dur_sum"] or 0),
                "max_ns": int(r["dur_max"] or 0),
                "by_kind": by_kind.get(int(r["pid"]), {}),
            }
            for r in rows[:TOP]
        ],
        max(0, len(rows) - TOP),
    )


def _wakeups(t: pa.Table, comm: dict[int, str], pids: set[int] | None, lo: int, hi: int,
             path: Sequence[SegmentJson]) -> tuple[list[WakeupEdgeJson], int]:
    if t.num_rows == 0:
        return [], 0
    ts = pc.cast(t["ts_ns"], pa.int64())
    m = pc.and_(pc.equal(t["waker"].cast(pa.string()), "process"),
                pc.not_equal(t["waker_pid"], t["pid"]))
    m = pc.and_(m, pc.greater(t["waker_pid"], 0))
    m = pc.and_(m, pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi)))
    m = pc.fill_null(pc.and_(m, _in(t["pid"], pids)), False)
    sel = t.filter(m)
    if sel.num_rows == 0:
        return [], 0
    end = np.asarray(pc.cast(sel["ts_ns"], pa.int64()).to_numpy(), dtype=np.int64)
    start = np.asarray(pc.cast(pc.fill_null(sel["idle_start_ns"], 0), pa.int64()).to_numpy(),
                       dtype=np.int64)
    idle = end - np.maximum(start, lo)  # the part of the stretch inside the window
    g = pa.table({"waker_pid": sel["waker_pid"], "pid": sel["pid"], "idle": idle,
                  "waker_comm": sel["waker_comm"]})
    agg = g.group_by(["waker_pid", "pid"]).aggregate(
        [("idle", "count"), ("idle", "sum"), ("idle", "max"), ("waker_comm", "max")])
    on_path: dict[tuple[int, int], int] = {}
    for s in path:
        wk = s.get("wakeup")
        woken = wk["woken"] if wk is not None else None
        if wk is not None and woken is not None and wk["waker_pid"] is not None:
            key = (wk["waker_pid"], woken["pid"])
            on_path[key] = on_path.get(key, 0) + s["duration_ns"]
    rows = sorted(agg.to_pylist(), key=lambda r: (-int(r["idle_sum"]), int(r["waker_pid"]),
                                                  int(r["pid"])))
    return (
        [
            {
                "waker_pid": int(r["waker_pid"]),
                "waker_comm": comm.get(int(r["waker_pid"])) or r["waker_comm_max"],
                "woken_pid": int(r["pid"]),
                "woken_comm": comm.get(int(r["pid"])),
                "count": int(r["idle_count"]),
                "idle_ns": int(r["idle_sum"]),
                "max_idle_ns": int(r["idle_max"]),
                "path_ns": on_path.get((int(r["waker_pid"]), int(r["pid"])), 0),
            }
            for r in rows[:TOP]
        ],
        max(0, len(rows) - TOP),
    )


__all__ = ["SYNC_KINDS", "TOP", "blockers"]
