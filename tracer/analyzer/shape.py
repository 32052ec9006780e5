"""The JSON shapes (tracer/analyzer/model.py) of the passes' internal results: the critical
path's segments, the waits, the processes and the scope, as the Analysis carries them.
"""

from __future__ import annotations

from tracer.analyzer import (
    facts,
    stacks,
    tree,
    waits,
)
from tracer.analyzer.model import (
    ProcessJson,
    ScopeJson,
    SegmentJson,
    WaitJson,
)
from tracer.analyzer.work import Work

# -- JSON shapes of the internal results -----------------------------------------------------


def segments_json(w: Work) -> list[SegmentJson]:
    total = w.window.total_ns
    out: list[SegmentJson] = [
        {
            "start_ns": s.start_ns,
            "end_ns": s.end_ns,
            "duration_ns": s.end_ns - s.start_ns,
            "kind": s.kind,
            "label": s.label,
            "pid": w.pid(s.proc),
            "comm": w.comm(s.proc),
            "key": w.key(s.proc) if s.proc is not None else None,
            "wait": s.wait,
            "pct": round(100.0 * (s.end_ns - s.start_ns) / total, 2) if total else None,
        }
        for s in w.path
    ]
    sched = getattr(w, "sched", None)  # absent while passes before `sched` run
    if sched is not None:
        for seg, st in zip(out, sched.segments):
            if st is None:
                continue
            seg["states"] = st.states
            seg["states_of"] = w.party(st.of)
            if st.woken_by is not None:
                seg["woken_by"] = st.woken_by
    stackpath = getattr(w, "stackpath", None)  # absent while passes before it run
    if stackpath is not None:
        for seg, sc in zip(out, stackpath):
            if sc is not None:
                seg["components"] = sc.components
                seg["components_of"] = w.party(sc.of)
                seg["components_from"] = sc.source
                seg["components_hot"] = sc.hot
    for seg, s in zip(out, w.path):
        if s.wakeup is not None:
            e = s.wakeup
            seg["wakeup"] = {
                "ts_ns": e.ts_ns,
                "idle_start_ns": e.idle_start_ns,
                "idle_ns": e.ts_ns - e.idle_start_ns,
                "woken": w.party(s.woken),
                "woken_tid": e.woken_tid,
                "waker_pid": e.waker_pid,
                "waker_tid": e.waker_tid,
                "waker_comm": e.waker_comm,
                "waker": w.party(e.waker),
            }
    return out


def wait_json(w: Work, x: waits.Wait, k: int) -> WaitJson:
    info = w.profile.endpoint_info(x.endpoint) if x.kind in ("listener", "poll") else None
    out: WaitJson = {
        "kind": x.kind,
        "endpoint": x.endpoint,
        "component": info.get("component") if info else None,
        "waiter": w.party(x.waiter),
        "target": w.party(x.target),
        "start_ns": x.start_ns,
        "end_ns": x.end_ns,
        "duration_ns": (x.end_ns - x.start_ns) if x.end_ns is not None else None,
        "first_attempt_ns": x.first_attempt_ns,
        "ready_ns": x.ready_ns,
        "first_ok_ns": x.first_ok_ns,
        "last_attempt_ns": x.last_attempt_ns,
        "ended_ns": x.ended_ns,
        "attempts": x.attempts,
        "interval_ns": x.interval_ns,
        "lag_ns": x.lag_ns,
        "outcomes": x.outcomes,
        "confidence": x.confidence,
        "reason": w.redact.text(x.reason),
        "evidence": x.evidence,
        "in_window": _overlaps(x, *w.window.span(w.bounds.end_ns), w.bounds.end_ns),
    }
    if w.wait_parts is not None:
        out["waiter_component"], out["target_component"] = w.wait_parts[k]
    if x.listener is not None:
        out["listener"] = w.party(x.listener)
    return out


def proc_json(w: Work, p: tree.Proc) -> ProcessJson:
    path, unit, pod_uid = w.cgroups.get(p.cgroup_id or -1, (None, None, None))
    prof, argv = w.profile, w.redact.argv
    component = prof.component_for(p.names) or prof.component_for_cgroup(path, unit)
    members = w.scope.members
    out: ProcessJson = {
        "key": p.key,
        "pid": p.pid,
        "parent_key": w.key(p.parent) if p.parent is not None else None,
        "comm": p.comm,
        "exe": p.exe,
        "argv": argv(p.argv),
        "start_ns": p.start_ns,
        "first_seen_ns": p.first_seen_ns,
        "end_ns": p.end_ns,
        "exit_code": p.exit_code,
        "exit_signal": p.exit_signal,
        "component": component,
        "unit": unit,
        "pod_uid": pod_uid,
        "group": facts.group_of(p, w.cgroups)[1],
        "cgroup": path,
        "threads": p.threads,
        "from_snapshot": p.from_snapshot,
        "in_scope": members is None or p.idx in members,
        "execs": [
            {
                "ts_ns": e["ts_ns"],
                "filename": e["filename"],
                "comm": e["comm"],
                "argv": argv(e["argv"]),
            }
            for e in p.execs
        ],
    }
    if w.stackix is not None:
        out["spawned_by_component"] = stacks.spawned_by(w.stackix, w.procs, p)
    return out


def scope_json(w: Work) -> ScopeJson:
    n = len(w.procs.procs)
    members = w.scope.members
    kept = n if members is None else len(members)
    return {
        "mode": w.scope.mode,
        "root": w.party(w.scope.root) if w.scope.mode == "tree" else None,
        "processes": kept,
        "left_out": n - kept,
    }


def _overlaps(x: waits.Wait, lo: int, hi: int, trace_end: int) -> bool:
    """Whether the wait's span (to the trace end when it never ended) meets [lo, hi]."""
    end = x.end_ns if x.end_ns is not None else trace_end
    return x.start_ns <= hi and end >= lo
