"""Chrome trace-event JSON (what ui.perfetto.dev and chrome://tracing open) from a trace.

Format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
* one process track per process (pid = the real pid; metadata events name it "comm pid"),
  one complete event ("X") for its lifetime with its redacted argv as args;
* instant events ("i") on the process's track for each connect (with its real outcome), listen,
  exec and module load;
* waits as slices on the waiter's track ("wait: ENDPOINT") plus a flow ("s" -> "f") from the
  moment the target became ready (its listen, or the helper's exit) to the waiter's slice end;
* the critical path on its own track (pid 0, "k3sprof critical path"), one slice per segment;
* with scheduler data (record --sched): each segment's states as args (``states_ns``: ns per
  state, ``states_of``: whose they are) and a "busy cores" counter track ("C" events, one per
  10 ms bucket of the analysis' `cpu` section) on the same pid 0 process; for each process
  with a state lane (the analysis' `state_lanes`: the processes on the critical path), a
  "scheduler state" thread track (tid = STATE_TID_BASE + pid) under its process, one slice per
  run of its dominant state ("cpu", "runqueue", "io", "sleep", "other", "steal"), and one track per
  thread of the lane (its 16 most on-CPU threads; tid = THREAD_TID_BASE + the real tid, named
  "thread TID state") with the thread's own dominant state per bucket.
* with stacks (schema 1.3): each segment's on-CPU ns by component as args (``components_ns``)
  and, per process with on-CPU samples, a "components" thread track (tid = COMPONENT_TID_BASE
  + pid), one slice per run of its dominant component. The samples themselves, as a callstack
  profile, are `k3sprof stacks --perf` (Perfetto's JSON importer reads no stack samples).

``ts`` and ``dur`` are microseconds since the recording started (floats keep ns precision).
Deterministic: events are sorted and the JSON has sorted keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from tracer import __version__
from tracer.analyzer.model import Analysis, StateLaneJson, ThreadLaneJson
from tracer.report import model
from tracer.report._output import write_output

OUTPUT_SUFFIX = ".perfetto.json"
CRITICAL_PATH_PID = 0
#: the per-process "scheduler state" track's tid (apart from every real tid)
STATE_TID_BASE = 1 << 30
#: the per-thread state tracks' tids (real tids are < 2^22: no clash with either)
THREAD_TID_BASE = 1 << 29
#: the per-process "components" track's tid (stacks, schema 1.3)
COMPONENT_TID_BASE = 1 << 28


class TraceEventDoc(TypedDict):
    traceEvents: list[dict[str, Any]]
    displayTimeUnit: str
    otherData: dict[str, Any]


def _us(ts_ns: int, t0: int) -> float:
    return round((ts_ns - t0) / 1000, 3)


class PerfettoExport:
    """Chrome trace-event JSON: build with from_analysis(), write with render()."""

    output_suffix = OUTPUT_SUFFIX

    def __init__(self, doc: TraceEventDoc) -> None:
        self.doc = doc

    @classmethod
    def from_analysis(cls, a: Analysis) -> PerfettoExport:
        """The export of one analysis (scoped and redacted as the analysis was)."""
        f = model.facts(a)
        t0 = f["start_ns"]
        t_end = max(f["end_ns"], f["analysis_end_ns"])
        events: list[dict[str, Any]] = []
        named: set[int] = set()

        def name_track(pid: int, name: str, sort_index: int | None = None) -> None:
            if pid in named:
                return
            named.add(pid)
            events.append(
                {
                    "ph": "M",
                    "name": "process_name",
                    "pid": pid,
                    "tid": pid,
                    "ts": 0,
                    "args": {"name": name},
                }
            )
            events.append(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": pid,
                    "tid": pid,
                    "ts": 0,
                    "args": {"name": name},
                }
            )
            if sort_index is not None:
                events.append(
                    {
                        "ph": "M",
                        "name": "process_sort_index",
                        "pid": pid,
                        "tid": pid,
                        "ts": 0,
                        "args": {"sort_index": sort_index},
                    }
                )

        procs = model.processes(a)
        for p in procs:
            name_track(p["pid"], f"{p['comm']} {p['pid']} ({p['component']})")
            start = p["start_ns"] if p["start_ns"] is not None else t0
            end = p["end_ns"] if p["end_ns"] is not None else t_end
            events.append(
                {
                    "ph": "X",
                    "name": p["comm"] or str(p["pid"]),
                    "cat": "process",
                    "pid": p["pid"],
                    "tid": p["pid"],
                    "ts": _us(start, t0),
                    "dur": max(0.0, _us(end, t0) - _us(start, t0)),
                    "args": {
                        "argv": p["argv"],
                        "component": p["component"],
                        "unit": p["unit"],
                        "exit_code": p["exit_code"],
                        "exit_signal": p["exit_signal"],
                        "still_running_at_end": p["end_ns"] is None,
                        "on_critical_path": p["on_critical_path"],
                    },
                }
            )

        def instant(
            pid: int, comm: str, ts_ns: int, name: str, cat: str, args: dict[str, Any]
        ) -> None:
            name_track(pid, f"{comm} {pid}")
            events.append(
                {
                    "ph": "i",
                    "s": "t",
                    "name": name,
                    "cat": cat,
                    "pid": pid,
                    "tid": pid,
                    "ts": _us(ts_ns, t0),
                    "args": args,
                }
            )

        c = a.views.connects
        for i, ts in enumerate(c["ts_ns"]):
            ep = c["endpoint"][i] or "?"
            outcome = c["outcome"][i] or "unknown"
            ons = c["outcome_ns"][i]
            instant(
                c["pid"][i],
                c["comm"][i] or "?",
                ts,
                f"connect {ep} {outcome}",
                "connect",
                {
                    "endpoint": ep,
                    "outcome": outcome,
                    "errno": c["outcome_errno"][i],
                    "outcome_after_us": None if ons is None else round((ons - ts) / 1000, 3),
                },
            )
        ls = a.views.listens
        for i, ts in enumerate(ls["ts_ns"]):
            ep = ls["endpoint"][i] or "?"
            instant(
                ls["pid"][i], ls["comm"][i] or "?", ts, f"listen {ep}", "listen", {"endpoint": ep}
            )
        ex = a.views.execs
        for i, ts in enumerate(ex["ts_ns"]):
            instant(
                ex["pid"][i],
                ex["comm"][i] or "?",
                ts,
                f"exec {ex['program'][i]}",
                "exec",
                {"argv": ex["argv"][i], "ppid": ex["ppid"][i]},
            )
        mods = a.views.module_loads
        for i, ts in enumerate(mods["ts_ns"]):
            instant(
                mods["pid"][i],
                mods["comm"][i] or "?",
                ts,
                f"module {mods['name'][i] or '?'}",
                "module",
                {"kind": mods["kind"][i], "ret": mods["ret"][i]},
            )

        for n, w in enumerate(
            sorted(
                model.waits(a), key=lambda w: (w["first_attempt_ns"] or 0, w["kind"])
            )
        ):
            span = model.wait_span(w)
            if span is None or w["waiter_pid"] is None:
                continue
            name_track(w["waiter_pid"], f"{w['waiter_comm']} {w['waiter_pid']}")
            label = f"wait {w['kind']}: {w['endpoint'] or w['target_comm'] or '?'}"
            events.append(
                {
                    "ph": "X",
                    "name": label,
                    "cat": f"wait:{w['kind']}",
                    "pid": w["waiter_pid"],
                    "tid": w["waiter_pid"],
                    "ts": _us(span[0], t0),
                    "dur": max(0.0, _us(span[1], t0) - _us(span[0], t0)),
                    "args": {
                        "attempts": w["attempts"],
                        "interval_us": _opt_us(w["interval_ns"]),
                        "lag_us": _opt_us(w["lag_ns"]),
                        "target_pid": w["target_pid"],
                        "target_comm": w["target_comm"],
                    },
                }
            )
            # the flow starts where the target became ready: its listen, or its exit (child)
            ready = w["ready_ns"] if w["ready_ns"] is not None else span[1]
            if w["target_pid"] is not None and span[0] <= ready <= span[1]:
                name_track(w["target_pid"], f"{w['target_comm']} {w['target_pid']}")
                flow = {"name": label, "cat": "wait", "id": n + 1}
                events.append(
                    {
                        **flow,
                        "ph": "s",
                        "pid": w["target_pid"],
                        "tid": w["target_pid"],
                        "ts": _us(ready, t0),
                    }
                )
                events.append(
                    {
                        **flow,
                        "ph": "f",
                        "bp": "e",
                        "pid": w["waiter_pid"],
                        "tid": w["waiter_pid"],
                        "ts": _us(span[1], t0),
                    }
                )

        segs = model.segments(a)
        seg_events: list[dict[str, Any]] = []
        if segs:
            name_track(CRITICAL_PATH_PID, "k3sprof critical path", sort_index=-1)
            for s in segs:
                events.append(
                    {
                        "ph": "X",
                        "name": f"{s['kind']}: {s['label'] or s['comm']}",
                        "cat": "critical_path",
                        "pid": CRITICAL_PATH_PID,
                        "tid": CRITICAL_PATH_PID,
                        "ts": _us(s["start_ns"], t0),
                        "dur": max(0.0, _us(s["end_ns"], t0) - _us(s["start_ns"], t0)),
                        "args": {"pid": s["pid"], "comm": s["comm"], "kind": s["kind"]},
                    }
                )
                if "states" in s:
                    events[-1]["args"]["states_ns"] = dict(s["states"])
                    events[-1]["args"]["states_of"] = s.get("states_of", "")
                seg_events.append(events[-1])
            if len(seg_events) == len(a.critical_path):  # with stacks: on-CPU by component
                for ev, raw in zip(seg_events, a.critical_path):
                    if raw.get("components"):
                        ev["args"]["components_ns"] = dict(raw["components"])
        busy = model.busy_cores(a)
        if busy is not None and busy["start_ns"]:
            name_track(CRITICAL_PATH_PID, "k3sprof critical path", sort_index=-1)
            for ts, cores in zip(busy["start_ns"], busy["cores"]):
                events.append(
                    {
                        "ph": "C",
                        "name": "busy cores",
                        "cat": "sched",
                        "pid": CRITICAL_PATH_PID,
                        "tid": CRITICAL_PATH_PID,
                        "ts": _us(ts, t0),
                        "args": {"cores": cores},
                    }
                )

        lanes = a.state_lanes
        bucket_ms = lanes["bucket_ns"] / 1e6 if lanes is not None else 0.0
        for lane in lanes["lanes"] if lanes is not None else []:
            pid = lane["pid"]
            name_track(pid, f"{lane['comm']} {pid}")
            tid = STATE_TID_BASE + pid
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "ts": 0,
                           "args": {"name": "scheduler state (dominant per "
                                    f"{bucket_ms:.1f} ms)"}})
            tracks: list[tuple[int, StateLaneJson | ThreadLaneJson]] = [(tid, lane)]
            for th in lane["threads"]:
                ttid = THREAD_TID_BASE + th["tid"]
                events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": ttid,
                               "ts": 0, "args": {"name": f"thread {th['tid']} state"}})
                tracks.append((ttid, th))
            for track, runs in tracks:
                for lo, hi, state in zip(runs["start_ns"], runs["end_ns"], runs["state"]):
                    events.append({
                        "ph": "X", "name": state, "cat": "sched", "pid": pid, "tid": track,
                        "ts": _us(lo, t0),
                        "dur": max(0.0, _us(hi, t0) - _us(lo, t0)),
                    })

        _component_lanes(a, events, name_track, t0)

        # metadata first, then by time; ties broken by the full event for stable bytes
        events.sort(
            key=lambda e: (e["ph"] != "M", e["ts"], e["pid"], json.dumps(e, sort_keys=True))
        )
        doc = TraceEventDoc(
            traceEvents=events,
            displayTimeUnit="ms",
            otherData={
                "k3sprof_version": __version__,
                "trace": f["name"],
                "host": f["hostname"],
                "kernel": f["kernel"],
                "recording_start_monotonic_ns": t0,
                "lost_events": f["lost_events"],
                "probes_unavailable": f["probes_unavailable"],
                "redacted": a.redacted,
            },
        )
        return cls(doc)

    def render_bytes(self) -> bytes:
        return (
            json.dumps(self.doc, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
        ).encode()

    def render(self, path: Path, *, force: bool = False) -> None:
        write_output(path, self.render_bytes(), force)


def _component_lanes(a: Analysis, events: list[dict[str, Any]], name_track: Any,
                     t0: int) -> None:
    """With stacks: per process with on-CPU samples, a "components" thread track (tid =
    COMPONENT_TID_BASE + pid) with one slice per run of its dominant component (the analysis'
    `stacks.lanes`), args: samples. Perfetto's JSON importer reads no stack samples (it skips
    `stackFrames`/`samples` and has no "P" events): `k3sprof stacks --perf` is the callstack
    profile Perfetto opens (docs/stacks.md)."""
    lanes = a.stacks["lanes"] if a.stacks is not None else None
    bucket_ms = lanes["bucket_ns"] / 1e6 if lanes is not None else 0.0
    for lane in lanes["lanes"] if lanes is not None else []:
        pid = lane["pid"]
        name_track(pid, f"{lane['comm']} {pid}")
        tid = COMPONENT_TID_BASE + pid
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "ts": 0,
                       "args": {"name": "components on-CPU (dominant per "
                                f"{bucket_ms:.1f} ms)"}})
        for lo, hi, comp, n in zip(lane["start_ns"], lane["end_ns"], lane["component"],
                                   lane["samples"]):
            events.append({
                "ph": "X", "name": comp, "cat": "stacks", "pid": pid, "tid": tid,
                "ts": _us(lo, t0), "dur": max(0.0, _us(hi, t0) - _us(lo, t0)),
                "args": {"samples": n},
            })


def _opt_us(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1000, 3)
