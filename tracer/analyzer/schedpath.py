"""Scheduler states on the critical path (issues 15 and 17): pure functions over a SchedIndex.

* every ``run`` segment carries the states of its own process over the segment, and so do
  ``wait:wakeup`` (the waker's), ``wait:child`` and ``wait:module`` (the helper's) segments;
* every ``wait:poll``, ``wait:listener`` and ``wait:poll-lag`` segment whose target process is
  known carries the TARGET's states over the segment (what the waiter waited on was doing);
* both sum EXACTLY to the segment's duration (SchedIndex.states_between's contract).

For a ``wait:poll`` whose target was mostly idle, the wakers of the target's idle stretches in
the segment say what ended them (the longest one first): the timer a retry loop slept on, or
another process. The ``cpu`` section: per-process on-CPU time over the analysis window and the
machine's busy cores per 10 ms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracer.analyzer.critical_path import Segment
from tracer.analyzer.model import (
    CpuJson,
    CpuProcessJson,
    StateLaneJson,
    StateLanesJson,
    ThreadLaneJson,
    WokenByJson,
)
from tracer.analyzer.sched import BUCKET_NS, PRIORITY, STATES, SchedIndex
from tracer.analyzer.tree import Processes
from tracer.analyzer.waits import Wait

#: segment kinds whose states are the target's (issue 17)
TARGET_KINDS = ("wait:poll", "wait:listener", "wait:poll-lag")
#: segment kinds whose states are their own process's: it ran (or, for a waker or a helper,
#: it ran while another process waited for it)
PROC_KINDS = ("run", "wait:wakeup", "wait:child", "wait:module")
#: states counted as "busy" (the target was working, or wanted to)
BUSY = ("cpu", "steal", "runqueue", "io")
#: at most this many wakeups per wait:poll segment in `woken_by`
MAX_WAKERS = 20
#: at most this many processes in the cpu section (the rest are summed in `others_ns`)
TOP_PROCESSES = 50


@dataclass
class SegmentStates:
    """The states attached to one critical-path segment."""

    of: int  # process instance whose states these are (the segment's, or the wait's target)
    states: dict[str, int]
    #: wait:poll segments: wakeups of the target's threads inside it (time order)
    woken_by: list[WokenByJson] | None = None


def path_states(
    ix: SchedIndex, procs: Processes, path: Sequence[Segment], waits: Sequence[Wait]
) -> list[SegmentStates | None]:
    """One entry per segment (None: no states for that kind or no known process)."""
    out: list[SegmentStates | None] = []
    for s in path:
        of: int | None = None
        if s.kind in PROC_KINDS:
            of = s.proc
        elif s.kind in TARGET_KINDS and s.wait is not None:
            of = waits[s.wait].target
        if of is None or of < 0:
            out.append(None)
            continue
        pid = procs.procs[of].pid
        st = SegmentStates(of, ix.states_between(pid, s.start_ns, s.end_ns))
        if s.kind == "wait:poll":
            st.woken_by = _wakers(ix, pid, s.start_ns, s.end_ns)
        out.append(st)
    return out


def _wakers(ix: SchedIndex, pid: int, t0: int, t1: int) -> list[WokenByJson]:
    """The wakeups of the target's threads inside the segment (each ended one thread's idle
    stretch of >= 1 ms), in time order; the MAX_WAKERS longest stretches when there are more.
    Per thread, not per process: a sleeping worker's timer is seen even while another thread
    answers connections."""
    found = ix.wakeups(pid, t0, t1)

    def idle(w: Any) -> int:
        return int(w.ts_ns - (w.idle_start_ns if w.idle_start_ns is not None else t0))

    if len(found) > MAX_WAKERS:
        found = sorted(sorted(found, key=lambda w: -idle(w))[:MAX_WAKERS], key=lambda w: w.ts_ns)
    return [
        {
            "ts_ns": w.ts_ns,
            "tid": w.tid,
            "idle_start_ns": w.idle_start_ns,
            "idle_ns": idle(w),
            "idle_state": w.idle_state,
            "kind": w.kind,
            "pid": w.waker_pid,
            "comm": w.waker_comm,
            "same_process": bool(w.kind == "process" and not w.other_process),
        }
        for w in found
    ]


def composition(segments: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
    """States summed over the segments that carry them (None when none does)."""
    tot = dict.fromkeys(STATES, 0)
    seen = False
    for s in segments:
        st = s.get("states")
        if st:
            seen = True
            for k in STATES:
                tot[k] += int(st.get(k, 0))  # no "steal" in analyses before it
    return tot if seen else None


def cpu_section(ix: SchedIndex, procs: Processes, lo: int, hi: int) -> CpuJson:
    """Per-process on-CPU time (all its threads) over [lo, hi) and busy cores per 10 ms."""
    per_pid = ix.cpu_by_pid(lo, hi)
    ranked = sorted(per_pid.items(), key=lambda kv: (-kv[1], kv[0]))
    rows: list[CpuProcessJson] = []
    for pid, ns in ranked[:TOP_PROCESSES]:
        p = _instance(procs, pid, lo, hi)
        rows.append(
            {
                "pid": pid,
                "comm": p.comm if p is not None else None,
                "key": p.key if p is not None else None,
                "cpu_ns": ns,
                "pct_of_window": round(100.0 * ns / (hi - lo), 2) if hi > lo else None,
            }
        )
    starts, cores = ix.busy_cores(lo, hi, BUCKET_NS)
    return {
        "start_ns": lo,
        "end_ns": hi,
        "processes": rows,
        "others_ns": int(sum(ns for _, ns in ranked[TOP_PROCESSES:])),
        "busy_cores": {
            "bucket_ns": BUCKET_NS,
            "start_ns": [int(x) for x in starts],
            "cores": [round(float(x), 3) for x in np.asarray(cores)],
        },
    }


#: at most this many processes get a state lane (those longest on the critical path)
LANE_PROCESSES = 12
#: a lane has at most this many buckets over the window (each >= 1 ms)
LANE_BUCKETS = 2000
#: per lane, at most this many threads (the most on-CPU first) get their own runs
LANE_THREADS = 16


def state_lanes(
    ix: SchedIndex, procs: Processes, path: Sequence[Segment], lo: int, hi: int
) -> StateLanesJson | None:
    """Per process on the critical path (the LANE_PROCESSES longest on it), its state over
    the window as runs of the DOMINANT state per bucket (>= 1 ms, at most LANE_BUCKETS per
    lane), clipped to the process's life. Columnar: the timeline's state time is integrated
    at the bucket edges by interpolating its cumulative sum."""
    on: dict[int, int] = {}
    for s in path:
        if s.proc is not None and s.proc >= 0:
            on[s.proc] = on.get(s.proc, 0) + (s.end_ns - s.start_ns)
    if not on or hi <= lo:
        return None
    ranked = sorted(on.items(), key=lambda kv: (-kv[1], kv[0]))
    bucket = max(1_000_000, -(-(hi - lo) // LANE_BUCKETS))
    lanes: list[StateLaneJson] = []
    for idx, ns in ranked[:LANE_PROCESSES]:
        p = procs.procs[idx]
        a = max(lo, p.start_ns if p.start_ns is not None else lo)
        b = min(hi, p.end_ns if p.end_ns is not None else hi)
        if b <= a:
            continue
        bounds, frac = ix.timeline(p.pid, a, b)
        cum = np.vstack([np.zeros((1, len(STATES))),
                         np.cumsum(frac * np.diff(bounds)[:, None].astype(np.float64), axis=0)])
        edges = np.unique(np.concatenate([np.arange(a, b, bucket, dtype=np.int64), [b]]))
        at = np.stack([np.interp(edges.astype(np.float64), bounds.astype(np.float64),
                                 cum[:, j]) for j in range(len(STATES))], axis=1)
        runs = _runs(edges, np.diff(at, axis=0))
        tids, per = ix.thread_buckets(p.pid, edges)
        busy = per[:, :, STATES.index("cpu")].sum(axis=1) if len(tids) else np.zeros(0)
        top = np.argsort(-busy, kind="stable")[:LANE_THREADS]
        threads: list[ThreadLaneJson] = []
        for k in sorted(top.tolist(), key=lambda k: int(tids[k])):
            t_runs = _runs(edges, per[k])
            threads.append({"tid": int(tids[k]), "cpu_ns": round(float(busy[k])),
                            "start_ns": t_runs["start_ns"], "end_ns": t_runs["end_ns"],
                            "state": t_runs["state"]})
        lane: StateLaneJson = {"pid": p.pid, "comm": p.comm, "key": p.key, "on_path_ns": ns,
                               "start_ns": runs["start_ns"], "end_ns": runs["end_ns"],
                               "state": runs["state"], "threads": threads,
                               "threads_left_out": max(0, len(tids) - LANE_THREADS)}
        lanes.append(lane)
    return {
        "start_ns": lo,
        "end_ns": hi,
        "bucket_ns": bucket,
        "lanes": lanes,
        "left_out": max(0, len(ranked) - LANE_PROCESSES),
    }


def _runs(edges: Any, per_bucket: Any) -> dict[str, list[Any]]:
    """Runs of the dominant state per bucket: {start_ns, end_ns, state} (parallel lists)."""
    dom = np.argmax(per_bucket, axis=1)
    change = np.flatnonzero(np.diff(dom) != 0) + 1
    first = np.concatenate([[0], change])
    past = np.concatenate([change, [len(dom)]])
    return {"start_ns": edges[first].tolist(), "end_ns": edges[past].tolist(),
            "state": [STATES[k] for k in dom[first].tolist()]}


def _instance(procs: Processes, pid: int, lo: int, hi: int) -> Any:
    best = None
    for p in procs.procs:
        if p.pid != pid:
            continue
        born = p.start_ns if p.start_ns is not None else p.first_seen_ns
        if born <= hi and (p.end_ns is None or p.end_ns >= lo):
            best = p
    return best


__all__ = ["BUSY", "PRIORITY", "SegmentStates", "composition", "cpu_section", "path_states",
           "state_lanes"]
